import { useEffect, useState } from 'react';
import { ChatPage } from './chat/ChatPage.tsx';
import { Dashboard } from './dashboard/Dashboard.tsx';
import { KeyDialog } from './KeyDialog.tsx';
import { LineagePage } from './lineage/LineagePage.tsx';
import { isLineageHash, lineageRefFromHash } from './lineage/route.ts';

type Page = 'chat' | 'dashboard' | 'lineage';

const TITLES: Record<Page, string> = { chat: 'Chat', dashboard: 'Dashboard', lineage: 'Lineage' };

/** Hash routes (`#/`, `#/dashboard`, `#/lineage/<kind>/<id>`) so the server needs no fallback route for the UI. */
function pageFromHash(): Page {
  if (isLineageHash(window.location.hash)) return 'lineage';
  return window.location.hash.startsWith('#/dashboard') ? 'dashboard' : 'chat';
}

export function App() {
  const [page, setPage] = useState<Page>(pageFromHash);
  const [hash, setHash] = useState(window.location.hash);
  const [keyVersion, setKeyVersion] = useState(0);

  useEffect(() => {
    const onHash = () => {
      setPage(pageFromHash());
      setHash(window.location.hash);
    };
    const onKey = () => setKeyVersion((value) => value + 1);
    window.addEventListener('hashchange', onHash);
    window.addEventListener('bertha:api-key', onKey);
    return () => {
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener('bertha:api-key', onKey);
    };
  }, []);

  useEffect(() => {
    document.title = `Bertha · ${TITLES[page]}`;
  }, [page]);

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">Bertha</span>
        <nav aria-label="Main">
          <a href="#/" aria-current={page === 'chat' ? 'page' : undefined}>
            Chat
          </a>
          <a href="#/dashboard" aria-current={page !== 'chat' ? 'page' : undefined}>
            Dashboard
          </a>
        </nav>
        <KeyDialog keyVersion={keyVersion} />
      </header>
      <main id="main" tabIndex={-1}>
        {page === 'chat' && <ChatPage />}
        {page === 'dashboard' && <Dashboard keyVersion={keyVersion} />}
        {page === 'lineage' && <LineagePage key={keyVersion} target={lineageRefFromHash(hash)} />}
      </main>
    </div>
  );
}
