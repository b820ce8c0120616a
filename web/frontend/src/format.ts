import { t } from "./i18n";

/** "剩余 1:02:03" / "超时 3:04" for a deadline, ticking every second on screen. */
export function countdown(deadline: string | null, now: number): string {
  if (!deadline) return t("noDeadline");
  const ms = Date.parse(deadline) - now;
  const s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  const hms = [Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60]
    .map((n, i) => (i === 0 ? String(n) : String(n).padStart(2, "0")))
    .join(":");
  const text = d > 0 ? `${d}d ${hms}` : hms;
  return ms >= 0 ? `${t("left")} ${text}` : `${t("late")} ${text}`;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(document.documentElement.lang || "zh-CN", { hour12: false });
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}
