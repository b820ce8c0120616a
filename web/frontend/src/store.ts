// The operator's picture of the cases: the hub's snapshot, then its deltas. Each case keeps the
// highest delta_id applied; anything not above it (in flight before the snapshot, or a repeat of
// the bus) is dropped, so the picture never steps back.

export interface CaseState {
  case_id: number;
  delta_id: number;
  change?: string;
  at?: string;
  status: string;
  category: string | null;
  category_group: string | null;
  priority: string;
  unit: string | null;
  street: string | null;
  community: string | null;
  grid: string | null;
  attention: string | null;
  // 多网融合: the case this one was merged into, or may duplicate (every delta carries both).
  merged_into?: number | null;
  possible_duplicate_of?: number | null;
  deadline_kind: string | null;
  deadline_at: string | null;
  handle_deadline_at: string | null;
  title: string;
  address?: string | null;
  reported_at?: string | null;
  lon: number | null;
  lat: number | null;
  sources: string[];
}

export interface Position {
  inspector: string;
  name: string | null;
  lon: number;
  lat: number;
  at: string;
  street: string | null;
  grid: string | null;
}

export const TERMINAL = new Set(["closed", "rejected", "merged"]);

export type Risk = "overdue" | "soon" | "ok" | "none";

const SOON_MS = 2 * 3600 * 1000;

export function riskOf(c: CaseState, now: number): Risk {
  if (!c.deadline_at) return "none";
  const left = Date.parse(c.deadline_at) - now;
  if (left < 0) return "overdue";
  return left < SOON_MS ? "soon" : "ok";
}

type Listener = (changed: number[] | null) => void;

export class CaseStore {
  readonly cases = new Map<number, CaseState>();
  readonly positions = new Map<string, Position>();
  // Watermarks of cases not shown (recently closed etc.): their late deltas must not revive them.
  private readonly marks = new Map<number, number>();
  private readonly listeners = new Set<Listener>();
  truncated = false;

  onChange(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(changed: number[] | null): void {
    for (const fn of this.listeners) fn(changed);
  }

  replace(cases: CaseState[], tombstones: Record<string, number>, positions: Position[], truncated: boolean): void {
    this.cases.clear();
    this.marks.clear();
    for (const c of cases) this.cases.set(c.case_id, c);
    for (const [id, mark] of Object.entries(tombstones)) this.marks.set(Number(id), mark);
    this.positions.clear();
    for (const p of positions) this.positions.set(p.inspector, p);
    this.truncated = truncated;
    this.emit(null);
  }

  apply(delta: CaseState): boolean {
    const id = delta.case_id;
    const cur = this.cases.get(id);
    const mark = cur?.delta_id ?? this.marks.get(id) ?? 0;
    if (delta.delta_id <= mark) return false;
    if (TERMINAL.has(delta.status)) {
      this.cases.delete(id);
      this.marks.set(id, delta.delta_id);
    } else {
      // Deltas do not carry the report time and address: keep them from the snapshot.
      this.cases.set(id, { ...cur, ...delta });
    }
    this.emit([id]);
    return true;
  }

  leave(caseId: number): void {
    const cur = this.cases.get(caseId);
    if (!cur) return;
    this.cases.delete(caseId);
    this.marks.set(caseId, cur.delta_id);
    this.emit([caseId]);
  }

  position(p: Position): void {
    this.positions.set(p.inspector, p);
    this.emit([]);
  }
}
