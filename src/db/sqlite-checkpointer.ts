import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * SQLite's automatic WAL checkpoint runs inside whichever commit crosses the threshold and
 * fsyncs the database file there: measured here, that stalled one commit in a hundred by
 * 10-27 ms, and with it Node's event loop and every request in flight. Bertha turns the
 * automatic checkpoint off and runs the same PASSIVE checkpoint from a worker thread with its
 * own connection, which neither blocks writers nor waits for readers.
 */
export interface Checkpointer {
  close(): Promise<void>;
}

export interface CheckpointerOptions {
  /** Checkpoint once the WAL file is at least this big (SQLite's default is 1,000 pages). */
  walBytes?: number;
  intervalMs?: number;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
parentPort.on('message', (message) => {
  if (message === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true });
  } catch (error) {
    parentPort.postMessage({ ok: false, error: String(error) });
  }
});
`;

export function startCheckpointer(file: string, options: CheckpointerOptions = {}): Checkpointer {
  const walBytes = options.walBytes ?? 4 * 1024 * 1024;
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  let worker: Worker | undefined;
  let inFlight = false;

  function walSize(): number {
    try {
      return statSync(`${file}-wal`).size;
    } catch {
      return 0;
    }
  }

  // A worker is started only once a checkpoint is due, so short CLI runs never pay for one.
  function ensureWorker(): Worker {
    if (worker) return worker;
    const started = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, file } });
    started.on('message', () => {
      inFlight = false;
    });
    // A failed worker only means checkpoints wait for the next tick, or for SQLite's own on close.
    started.on('error', () => {
      inFlight = false;
      worker = undefined;
    });
    // After the listeners: attaching a 'message' listener references the worker's port again.
    started.unref();
    worker = started;
    return started;
  }

  const timer = setInterval(() => {
    if (inFlight || walSize() < walBytes) return;
    inFlight = true;
    ensureWorker().postMessage('checkpoint');
  }, options.intervalMs ?? 500);
  timer.unref();

  return {
    async close() {
      clearInterval(timer);
      const running = worker;
      worker = undefined;
      if (!running) return;
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      // Unreferenced, the worker would not keep the process alive until it has closed its connection.
      running.ref();
      running.postMessage('close');
      await exited;
    },
  };
}
