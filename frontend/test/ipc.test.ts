import { describe, expect, it, vi } from "vitest";

import { BOOTSTRAP, connectHostIpc, DATA_RELOADED, handleIpcMessage } from "../src/ipc";

describe("handleIpcMessage", () => {
  it("calls the handler for a broadcast and replies with the same type and id", async () => {
    const onReload = vi.fn(() => null);
    const reply = await handleIpcMessage(
      JSON.stringify({ type: DATA_RELOADED, id: 7, payload: null, error: null, isReply: false }),
      { [DATA_RELOADED]: onReload },
    );
    expect(onReload).toHaveBeenCalledTimes(1);
    expect(JSON.parse(reply!)).toEqual({ type: DATA_RELOADED, id: 7, payload: null, error: null, isReply: true });
  });

  it("replies to unknown types too, and ignores replies and junk", async () => {
    const unknown = await handleIpcMessage(JSON.stringify({ type: "experimental.RunsChanged", id: 1, payload: ["a"], error: null, isReply: false }), {});
    expect(JSON.parse(unknown!)).toMatchObject({ type: "experimental.RunsChanged", id: 1, isReply: true });
    expect(await handleIpcMessage(JSON.stringify({ type: DATA_RELOADED, id: 1, isReply: true }), {})).toBeNull();
    expect(await handleIpcMessage("not json", {})).toBeNull();
    expect(await handleIpcMessage({ type: DATA_RELOADED }, {})).toBeNull();
  });

  it("reports handler errors in the reply", async () => {
    const reply = await handleIpcMessage(JSON.stringify({ type: "t", id: 2, payload: null, error: null, isReply: false }), {
      t: () => {
        throw new Error("boom");
      },
    });
    expect(JSON.parse(reply!)).toMatchObject({ error: "boom", isReply: true });
  });
});

describe("connectHostIpc", () => {
  it("is a no-op outside an iframe", () => {
    const win = {} as Window;
    (win as { parent: Window }).parent = win;
    expect(connectHostIpc({}, win)).toBeNull();
  });

  it("bootstraps over a MessageChannel and answers DataReloaded broadcasts", async () => {
    let hostPort: MessagePort | null = null;
    const parent = {
      postMessage: (msg: unknown, origin: string, transfer: MessagePort[]) => {
        expect(msg).toBe(BOOTSTRAP);
        expect(origin).toBe("*");
        hostPort = transfer[0];
      },
    };
    const win = { parent } as unknown as Window;
    const reloaded = new Promise<void>((resolve) => {
      const ipc = connectHostIpc({ [DATA_RELOADED]: () => resolve() }, win);
      expect(ipc).not.toBeNull();
    });
    expect(hostPort).not.toBeNull();
    const port = hostPort as unknown as MessagePort;
    const reply = new Promise<string>((resolve) => {
      port.onmessage = (e: MessageEvent) => resolve(e.data as string);
    });
    port.postMessage(JSON.stringify({ type: DATA_RELOADED, id: 3, payload: null, error: null, isReply: false }));
    await reloaded;
    expect(JSON.parse(await reply)).toEqual({ type: DATA_RELOADED, id: 3, payload: null, error: null, isReply: true });
    port.close();
  });
});
