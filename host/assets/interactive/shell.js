// The shell page: xterm.js on a WebSocket to /shell/<token> (framing in
// docs/interactive.md). The page's own query (?command=…&tty=…) is passed on;
// by default the engine's shell with a tty.
import { Terminal } from "./xterm.mjs";
import { FitAddon } from "./addon-fit.mjs";
import { token, show, socketUrl, running, afterClose } from "./common.js";

const STDIN = 0;
const encoder = new TextEncoder();
const term = new Terminal({ cursorBlink: true, scrollback: 5000 });
const fit = new FitAddon();
term.loadAddon(fit);
term.open(document.getElementById("terminal"));
fit.fit();
window.addEventListener("resize", () => fit.fit());
// For tests and people alike: what the terminal shows, as text.
window.terminalText = () => {
  const buffer = term.buffer.active;
  const lines = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
  return lines.join("\n");
};

async function start() {
  if (!(await running(start))) return;
  const query = new URLSearchParams(location.search);
  if (!query.has("tty")) query.set("tty", "true");
  const ws = new WebSocket(socketUrl(`shell/${token}?${query}`));
  ws.binaryType = "arraybuffer";
  const resize = () => ws.send(JSON.stringify({ type: "resize", cols: term.cols, rows: term.rows }));
  ws.onopen = () => {
    show("connected", "connected");
    resize();
    term.focus();
  };
  term.onResize(() => ws.readyState === WebSocket.OPEN && resize());
  term.onData((data) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const bytes = encoder.encode(data);
    const frame = new Uint8Array(bytes.length + 1);
    frame[0] = STDIN;
    frame.set(bytes, 1);
    ws.send(frame);
  });
  let exited = null;
  ws.onmessage = (event) => {
    if (typeof event.data === "string") {
      const message = JSON.parse(event.data);
      if (message.type === "exit") exited = message.success ? "the shell exited" : "the shell exited with an error";
      if (message.type === "error") exited = message.message;
      return;
    }
    const frame = new Uint8Array(event.data);
    term.write(frame.subarray(1));
  };
  ws.onclose = (event) => {
    if (event.code === 4410) {
      show("terminated", "the sandbox has terminated: the task has ended");
    } else if (exited) {
      show("exited", exited);
    } else {
      afterClose("the connection closed");
    }
  };
}

start();
