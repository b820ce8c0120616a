// Tiny DOM helpers: the app is a handful of screens, no framework needed.

type Attrs = Record<string, string | number | boolean | undefined>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === "class") el.className = String(v);
    else if (k === "text") el.textContent = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function toast(text: string, kind: "ok" | "warn" = "ok"): void {
  const el = h("div", { class: `toast ${kind}`, role: "status", "data-testid": "toast" }, text);
  document.body.append(el);
  window.setTimeout(() => el.remove(), 3500);
}

export function metres(m: number): string {
  return m < 1000 ? `${Math.round(m)}` : `${(m / 1000).toFixed(1)}k`;
}

export function when(iso: string | null): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${d.getMonth() + 1}/${d.getDate()} ${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}
