import type { Source } from './types.ts';

/** The passages the answer was grounded on, shown as plain text (never as HTML). */
export function SourcesPanel({ sources }: { sources: Source[] }) {
  if (sources.length === 0) return null;
  return (
    <details className="sources">
      <summary>Sources ({sources.length})</summary>
      <ol>
        {sources.map((source) => (
          <li key={source.chunkId} className="source">
            <div className="source-head">
              <span className="source-doc" title={source.documentId}>
                {source.documentKey}
              </span>
              {source.documentVersion !== undefined && source.documentVersion !== null && (
                <span className="muted"> v{String(source.documentVersion)}</span>
              )}
              <span className="muted score"> score {source.score.toFixed(3)}</span>
            </div>
            {source.text && <blockquote className="source-text">{source.text}</blockquote>}
          </li>
        ))}
      </ol>
    </details>
  );
}
