/**
 * TensorBoard's host IPC for iframe plugins (tensorflow/tensorboard:
 * tensorboard/components/experimental/plugin_lib/plugin-guest.ts and plugin_util/message.ts),
 * re-implemented because the library is not published to npm.
 *
 * The guest creates a MessageChannel and hands port2 to the host with
 * `parent.postMessage("experimental.bootstrap", "*", [port2])`. Messages on the port are JSON
 * strings `{type, id, payload, error, isReply}`; every non-reply message is answered with a reply
 * carrying the same type and id. TensorBoard's reload button and auto-reload only broadcast
 * `experimental.DataReloaded`; `render()` is never called again.
 */

export const BOOTSTRAP = "experimental.bootstrap";
export const DATA_RELOADED = "experimental.DataReloaded";

export interface IpcMessage {
  type: string;
  id: number;
  payload: unknown;
  error: string | null;
  isReply: boolean;
}

export type IpcHandler = (payload: unknown) => unknown;

/**
 * Handle one raw message from the host; returns the reply to send (a JSON string), or null when
 * nothing is to be sent (a reply to us, or an unparsable message).
 */
export async function handleIpcMessage(raw: unknown, handlers: Readonly<Record<string, IpcHandler>>): Promise<string | null> {
  if (typeof raw !== "string") return null;
  let msg: Partial<IpcMessage>;
  try {
    msg = JSON.parse(raw) as Partial<IpcMessage>;
  } catch {
    return null;
  }
  if (!msg || typeof msg !== "object" || typeof msg.type !== "string" || msg.isReply) return null;
  let payload: unknown = null;
  let error: string | null = null;
  const handler = Object.prototype.hasOwnProperty.call(handlers, msg.type) ? handlers[msg.type] : undefined;
  if (handler) {
    try {
      const result = await handler(msg.payload);
      payload = result === undefined ? null : result;
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
  }
  const reply: IpcMessage = { type: msg.type, id: typeof msg.id === "number" ? msg.id : 0, payload, error, isReply: true };
  return JSON.stringify(reply);
}

export interface HostIpc {
  dispose(): void;
}

/**
 * Connect to the TensorBoard host. Returns null outside an iframe (e.g. the page opened directly),
 * where polling and the refresh button still work.
 */
export function connectHostIpc(handlers: Readonly<Record<string, IpcHandler>>, win: Window = window): HostIpc | null {
  let parent: Window | null;
  try {
    parent = win.parent;
  } catch {
    return null;
  }
  if (!parent || parent === win || typeof MessageChannel === "undefined") return null;
  const channel = new MessageChannel();
  const port = channel.port1;
  const onMessage = (event: MessageEvent): void => {
    void handleIpcMessage(event.data, handlers).then((reply) => {
      if (reply !== null) port.postMessage(reply);
    });
  };
  port.addEventListener("message", onMessage);
  port.start();
  try {
    parent.postMessage(BOOTSTRAP, "*", [channel.port2]);
  } catch {
    port.close();
    return null;
  }
  return {
    dispose() {
      port.removeEventListener("message", onMessage);
      port.close();
    },
  };
}
