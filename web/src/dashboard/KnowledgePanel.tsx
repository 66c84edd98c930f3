import { useRef, useState } from 'react';
import { ApiError, authHeaders, describeFailure, getJson, sendJson } from '../lib/api.ts';
import { listOf, num, text } from './fields.ts';
import { formatTime, Panel } from './Panel.tsx';
import { usePanelData } from './usePanelData.ts';

interface Document {
  id: string;
  key: string;
  status: string;
  version: string | undefined;
  chunks: number | undefined;
  error: string | undefined;
  updatedAt: string | undefined;
}

interface Upload {
  name: string;
  /** 0..1 while sending; 1 once the server answered. */
  progress: number;
  error?: string;
  done?: boolean;
}

function toDocument(raw: unknown): Document {
  return {
    id: text(raw, 'id', 'documentId') ?? '?',
    key: text(raw, 'key', 'documentKey', 'name') ?? '?',
    status: text(raw, 'status') ?? 'unknown',
    // The version is the content's SHA-256: its first characters tell versions apart.
    version: text(raw, 'version', 'documentVersion')?.slice(0, 8),
    chunks: num(raw, 'chunks', 'chunkCount'),
    error: text(raw, 'error'),
    updatedAt: text(raw, 'updatedAt', 'createdAt'),
  };
}

/** XMLHttpRequest because fetch cannot report upload progress. */
function uploadFile(file: File, onProgress: (fraction: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open('POST', '/v1/documents');
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.onload = () => {
      if (request.status >= 200 && request.status < 300) return resolve();
      let message = request.statusText || `HTTP ${request.status}`;
      let code = `http_${request.status}`;
      try {
        const body = JSON.parse(request.responseText) as { error?: { code?: string; message?: string } };
        message = body.error?.message ?? message;
        code = body.error?.code ?? code;
      } catch {
        // not JSON: keep the status line
      }
      reject(new ApiError(request.status, code, message));
    };
    request.onerror = () => reject(new TypeError('network error'));
    const form = new FormData();
    form.append('file', file, file.name);
    request.send(form);
  });
}

export function KnowledgePanel({ refreshKey }: { refreshKey: number }) {
  const { data, error, loading, reload } = usePanelData(
    async (signal) => listOf(await getJson<unknown>('/v1/documents?limit=200', signal)).map(toDocument),
    refreshKey,
    // Ingestion finishing publishes no event of its own: poll so `pending` turns `ingested`.
    3_000,
  );
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [dragging, setDragging] = useState(false);
  const [actionError, setActionError] = useState<string | null>(null);
  const picker = useRef<HTMLInputElement>(null);

  function upload(files: FileList | File[]) {
    for (const file of Array.from(files)) {
      setUploads((current) => [...current.filter((item) => item.name !== file.name), { name: file.name, progress: 0 }]);
      const set = (change: Partial<Upload>) =>
        setUploads((current) => current.map((item) => (item.name === file.name ? { ...item, ...change } : item)));
      uploadFile(file, (progress) => set({ progress })).then(
        () => {
          set({ progress: 1, done: true });
          reload();
        },
        (failure: unknown) => set({ error: describeFailure(failure) }),
      );
    }
  }

  async function remove(document: Document) {
    if (!window.confirm(`Delete ${document.key} from the knowledge base?`)) return;
    setActionError(null);
    try {
      await sendJson('DELETE', `/v1/documents/${encodeURIComponent(document.id)}`);
      reload();
    } catch (failure) {
      setActionError(describeFailure(failure));
    }
  }

  return (
    <Panel id="knowledge" title="Knowledge base" error={error} loading={loading}>
      {/* biome-ignore lint/a11y/noStaticElementInteractions: the drop zone's keyboard path is the button inside it. */}
      <div
        className={`dropzone${dragging ? ' dragging' : ''}`}
        data-testid="dropzone"
        onDragOver={(event) => {
          event.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(event) => {
          event.preventDefault();
          setDragging(false);
          if (event.dataTransfer.files.length > 0) upload(event.dataTransfer.files);
        }}
      >
        <p>Drop documents here (PDF, DOCX, Markdown, HTML, plain text) or</p>
        <button type="button" onClick={() => picker.current?.click()}>
          Choose files…
        </button>
        <input
          ref={picker}
          type="file"
          multiple
          hidden
          aria-label="Documents to upload"
          onChange={(event) => {
            if (event.target.files) upload(event.target.files);
            event.target.value = '';
          }}
        />
      </div>
      {uploads.length > 0 && (
        <ul className="uploads">
          {uploads.map((item) => (
            <li key={item.name} data-upload={item.name}>
              <span>{item.name}</span>
              {item.error ? (
                <span className="error"> {item.error}</span>
              ) : (
                <>
                  <progress value={item.progress} max={1} aria-label={`Uploading ${item.name}`} />
                  <span className="muted small">
                    {item.done ? ' uploaded' : ` ${Math.round(item.progress * 100)}%`}
                  </span>
                </>
              )}
            </li>
          ))}
        </ul>
      )}
      {actionError && (
        <p className="error" role="alert">
          {actionError}
        </p>
      )}
      <div className="table-scroll">
        <table className="documents">
          <thead>
            <tr>
              <th scope="col">document</th>
              <th scope="col">status</th>
              <th scope="col">chunks</th>
              <th scope="col">updated</th>
              <th scope="col">
                <span className="visually-hidden">actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(data ?? []).length === 0 && (
              <tr>
                <td colSpan={5} className="muted">
                  No documents yet.
                </td>
              </tr>
            )}
            {(data ?? []).map((document) => (
              <tr key={document.id} data-document={document.key} data-status={document.status}>
                <td>
                  {document.key}
                  {document.version && <span className="muted small"> v{document.version}</span>}
                </td>
                <td>
                  <span className={`badge state-${document.status}`}>{document.status}</span>
                  {document.status === 'failed' && document.error && (
                    <div className="error small" data-testid="document-error">
                      {document.error}
                    </div>
                  )}
                </td>
                <td>{document.chunks ?? '—'}</td>
                <td>{formatTime(document.updatedAt)}</td>
                <td>
                  <button type="button" className="link danger" onClick={() => void remove(document)}>
                    Delete<span className="visually-hidden"> {document.key}</span>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}
