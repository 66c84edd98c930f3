import { expect, test } from 'vitest';
import { loadText } from '../../src/knowledge/loaders.ts';
import { makeDocx, makePdf } from '../helpers/documents.ts';

test('markdown sections carry their heading and heading path', async () => {
  const md = '# Guide\nIntro text.\n## Install\nRun it.\n```\n# not a heading\n```\n## Use\nAsk things.';
  const loaded = await loadText('docs/guide.md', Buffer.from(md));
  expect(loaded.format).toBe('markdown');
  expect(loaded.sections.map((s) => s.metadata)).toEqual([
    { heading: 'Guide', section: 'Guide' },
    { heading: 'Install', section: 'Guide > Install' },
    { heading: 'Use', section: 'Guide > Use' },
  ]);
  expect(loaded.sections[1]?.text).toContain('# not a heading');
});

test('html drops scripts and styles, decodes entities, and splits at headings', async () => {
  const html =
    '<html><head><title>T &amp; C</title><style>p{}</style></head><body><script>alert(1)</script>' +
    '<h1>Terms</h1><p>Fish &amp; chips &#8364;5.</p><h2>Refunds</h2><p>Within 30&nbsp;days.</p></body></html>';
  const loaded = await loadText('t.html', Buffer.from(html));
  expect(loaded.metadata).toEqual({ title: 'T & C' });
  expect(loaded.sections).toEqual([
    { text: 'Terms\nFish & chips €5.', metadata: { heading: 'Terms', section: 'Terms' } },
    { text: 'Refunds\nWithin 30 days.', metadata: { heading: 'Refunds', section: 'Terms > Refunds' } },
  ]);
});

test('pdf text is extracted per page with page numbers', async () => {
  const loaded = await loadText('a.pdf', makePdf(['First page text.', 'Second page (two).']));
  expect(loaded.format).toBe('pdf');
  expect(loaded.metadata).toEqual({ pages: 2 });
  expect(loaded.sections).toEqual([
    { text: 'First page text.', metadata: { page: 1 } },
    { text: 'Second page (two).', metadata: { page: 2 } },
  ]);
});

test('docx paragraphs are read with their headings', async () => {
  const docx = makeDocx([{ text: 'Policy', heading: true }, { text: 'Returns are free.' }]);
  const loaded = await loadText('p.docx', docx);
  expect(loaded.format).toBe('docx');
  expect(loaded.sections).toEqual([
    { text: 'Policy\nReturns are free.', metadata: { heading: 'Policy', section: 'Policy' } },
  ]);
});

test('empty, corrupt, binary and unsupported files fail with a clear reason', async () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['empty.txt', Buffer.alloc(0), /empty/],
    ['blank.md', Buffer.from('  \n\n '), /no text/],
    ['broken.pdf', Buffer.from('%PDF-1.4\nthis is not a pdf'), /corrupt PDF/],
    ['broken.docx', Buffer.from('not a zip'), /corrupt DOCX/],
    ['binary.txt', Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80]), /UTF-8/],
    ['image.png', Buffer.from('png'), /unsupported format/],
  ];
  for (const [key, bytes, reason] of cases) {
    await expect(loadText(key, bytes)).rejects.toMatchObject({
      code: 'document_unreadable',
      message: expect.stringMatching(reason),
    });
  }
});
