// The unified categories (GET /api/v1/admin/taxonomy), kept on the phone so the picker works
// offline; the quick picks are the categories this phone reports most (common ones to start with).

import type { Api } from "./api";
import { lang } from "./i18n";

export interface Category {
  code: string;
  name_zh: string;
  name_en: string;
  group: string;
  duplicate_radius_m: number;
}

export interface Group {
  code: string;
  name_zh: string;
  name_en: string;
}

export interface Taxonomy {
  version: string;
  groups: Group[];
  categories: Category[];
}

const KEY = "youhu.m.taxonomy";
const USE_KEY = "youhu.m.category-use";
const COMMON = [
  "env.exposed_garbage",
  "street.occupation",
  "env.illegal_ads",
  "road.manhole_cover",
  "build.in_progress",
  "rental.overcrowded",
];

export async function loadTaxonomy(api: Api): Promise<Taxonomy | null> {
  try {
    const tx = await api.json<Taxonomy>("/api/v1/admin/taxonomy");
    const slim: Taxonomy = {
      version: tx.version,
      groups: tx.groups.map(({ code, name_zh, name_en }) => ({ code, name_zh, name_en })),
      categories: tx.categories.map(({ code, name_zh, name_en, group, duplicate_radius_m }) => ({
        code,
        name_zh,
        name_en,
        group,
        duplicate_radius_m,
      })),
    };
    localStorage.setItem(KEY, JSON.stringify(slim));
    return slim;
  } catch {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Taxonomy) : null;
  }
}

export function label(x: { name_zh: string; name_en: string }): string {
  return lang === "en" ? x.name_en : x.name_zh;
}

export function quickPicks(tx: Taxonomy, n = 6): Category[] {
  const use = JSON.parse(localStorage.getItem(USE_KEY) ?? "{}") as Record<string, number>;
  const known = new Map(tx.categories.map((c) => [c.code, c]));
  const ranked = Object.entries(use)
    .sort((a, b) => b[1] - a[1])
    .map(([code]) => code);
  const out: Category[] = [];
  for (const code of [...ranked, ...COMMON]) {
    const c = known.get(code);
    if (c && !out.includes(c)) out.push(c);
    if (out.length >= n) break;
  }
  return out;
}

export function countUse(code: string): void {
  const use = JSON.parse(localStorage.getItem(USE_KEY) ?? "{}") as Record<string, number>;
  use[code] = (use[code] ?? 0) + 1;
  localStorage.setItem(USE_KEY, JSON.stringify(use));
}
