import { useEffect, useState } from 'react';
import { ChatPage } from './chat/ChatPage.tsx';
import { Dashboard } from './dashboard/Dashboard.tsx';
import { KeyDialog } from './KeyDialog.tsx';

type Page = 'chat' | 'dashboard';

/** Hash routes (`#/`, `#/dashboard`) so the server needs no fallback route for the UI. */
function pageFromHash(): Page {
  return window.location.hash.startsWith('#/dashboard') ? 'dashboard' : 'chat';
}

export function App() {
  const [page, setPage] = useState<Page>(pageFromHash);
  const [keyVersion, setKeyVersion] = useState(0);

  useEffect(() => {
    const onHash = () => setPage(pageFromHash());
    const onKey = () => setKeyVersion((value) => value + 1);
    window.addEventListener('hashchange', onHash);
    window.addEventListener('bertha:api-key', onKey);
    return () => {
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener('bertha:api-key', onKey);
    };
  }, []);

  useEffect(() => {
    document.title = page === 'chat' ? 'Bertha · Chat' : 'Bertha · Dashboard';
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
          <a href="#/dashboard" aria-current={page === 'dashboard' ? 'page' : undefined}>
            Dashboard
          </a>
        </nav>
        <KeyDialog keyVersion={keyVersion} />
      </header>
      <main id="main" tabIndex={-1}>
        {page === 'chat' ? <ChatPage /> : <Dashboard keyVersion={keyVersion} />}
      </main>
    </div>
  );
}
