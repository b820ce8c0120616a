// The smallest IndexedDB wrapper the queue needs: one object store, keyed by the item's id.
// Photos are stored as Blobs inside the items (IndexedDB keeps Blobs natively).

const DB = "youhu-mobile";
const STORE = "queue";

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => {
      if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE, { keyPath: "id" });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("indexedDB.open failed"));
  });
}

let db: Promise<IDBDatabase> | null = null;

function tx<T>(mode: IDBTransactionMode, run: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  db ??= open();
  return db.then(
    (d) =>
      new Promise<T>((resolve, reject) => {
        const t = d.transaction(STORE, mode);
        const req = run(t.objectStore(STORE));
        // Resolve on the transaction's commit, not the request's success: a put is durable then.
        t.oncomplete = () => resolve(req.result);
        t.onerror = () => reject(t.error ?? new Error("indexedDB transaction failed"));
        t.onabort = () => reject(t.error ?? new Error("indexedDB transaction aborted"));
      }),
  );
}

export function put<T extends { id: string }>(item: T): Promise<IDBValidKey> {
  return tx("readwrite", (s) => s.put(item));
}

export function remove(id: string): Promise<undefined> {
  return tx("readwrite", (s) => s.delete(id));
}

export function all<T>(): Promise<T[]> {
  return tx("readonly", (s) => s.getAll() as IDBRequest<T[]>);
}
