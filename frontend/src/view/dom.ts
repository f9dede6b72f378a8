/**
 * Tiny DOM helpers. Every string goes in through textContent / createTextNode or an attribute
 * value, never as HTML, so run names, tags, descriptions and messages always render as text.
 */
import { statusLabel } from "../format";
import type { Status } from "../types";

export type Child = Node | string | number | null | undefined | false;

export interface Props {
  id?: string;
  class?: string;
  /** attributes, set with setAttribute (values are never parsed as HTML) */
  attrs?: Record<string, string>;
  /** data-* attributes, by camelCase key */
  data?: Record<string, string>;
  title?: string;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  props: Props | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = doc.createElement(tag);
  if (props) {
    if (props.id) el.id = props.id;
    if (props.class) el.className = props.class;
    if (props.title) el.title = props.title;
    if (props.attrs) for (const [k, v] of Object.entries(props.attrs)) el.setAttribute(k, v);
    if (props.data) for (const [k, v] of Object.entries(props.data)) el.dataset[k] = v;
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === "string" || typeof c === "number" ? parent.ownerDocument!.createTextNode(String(c)) : c);
  }
}

/** `<span class="badge badge-<status>">status</span>` */
export function badge(doc: Document, status: Status, text: string = statusLabel(status)): HTMLSpanElement {
  return h(doc, "span", { class: `badge badge-${status}`, title: `status: ${statusLabel(status)}` }, text);
}
