// 队列: what is still on the phone, waiting to be sent or refused with a reason; and what was sent.

import { h, when } from "./dom";
import { t } from "./i18n";
import type { Item, Outbox } from "./queue";

const KIND: Record<Item["kind"], "kindReport" | "kindAction" | "kindSupplement"> = {
  report: "kindReport",
  action: "kindAction",
  supplement: "kindSupplement",
};

export class QueueScreen {
  readonly el: HTMLElement;
  private readonly list: HTMLElement;
  private readonly done: HTMLElement;
  private readonly note: HTMLElement;

  constructor(private readonly outbox: Outbox) {
    const now = h("button", { class: "secondary", "data-testid": "send-now" }, t("sendNow"));
    now.addEventListener("click", () => void outbox.kick());
    this.note = h("p", { class: "warn", hidden: true }, t("loginAgain"));
    this.list = h("ul", { class: "cards", "data-testid": "queue-list" });
    this.done = h("ul", { class: "cards sent", "data-testid": "sent-list" });
    this.el = h("section", { class: "screen queue", "data-testid": "queue-screen" }, this.note, now, this.list, h("h2", {}, t("sentOk")), this.done);
  }

  render(): void {
    this.note.hidden = !this.outbox.needsLogin;
    this.list.replaceChildren();
    const items = this.outbox.list;
    if (items.length === 0) this.list.append(h("li", { class: "muted", "data-testid": "queue-empty" }, t("queueEmpty")));
    for (const i of items) {
      const li = h(
        "li",
        { class: `card q-${i.state}`, "data-testid": "queue-item", "data-state": i.state, "data-kind": i.kind },
        h("div", { class: "card-title" }, `${t(KIND[i.kind])} · ${i.summary}`),
        h(
          "div",
          { class: "muted small" },
          `${i.state === "failed" ? t("queueFailed") : t("queuePending")} · ${when(new Date(i.createdAt).toISOString())}` +
            ` · ${t("photos")} ${i.uploaded.length}/${i.photos.length}` +
            (i.attempts ? ` · ×${i.attempts}` : ""),
        ),
        i.error ? h("div", { class: "warn small" }, i.error) : null,
      );
      if (i.state === "failed") {
        const retry = h("button", { class: "secondary" }, t("retry"));
        retry.addEventListener("click", () => void this.outbox.retry(i.id));
        const discard = h("button", { class: "link" }, t("discard"));
        discard.addEventListener("click", () => void this.outbox.discard(i.id));
        li.append(h("div", { class: "actions" }, retry, discard));
      }
      this.list.append(li);
    }
    this.done.replaceChildren(
      ...this.outbox
        .sent()
        .slice(0, 10)
        .map((s) => h("li", { class: "card small", "data-testid": "sent-item" }, `✓ ${t(KIND[s.kind])} · ${s.summary}`)),
    );
  }
}
