// The display page: noVNC on a WebSocket to /display/<token>?display=NAME, scaled
// to the window. The display is the page's ?display=NAME, else the first listed.
import RFB from "./novnc.mjs";
import { token, show, socketUrl, running, afterClose } from "./common.js";

let rfb = null;

function connect(display) {
  if (rfb) rfb.disconnect();
  const screen = document.getElementById("screen");
  screen.replaceChildren();
  rfb = new RFB(screen, socketUrl(`display/${token}?display=${encodeURIComponent(display.name)}`));
  rfb.scaleViewport = true;
  rfb.addEventListener("connect", () => show("connected", `connected to ${display.name} (${display.description})`));
  rfb.addEventListener("disconnect", () => afterClose(`the display ${display.name} closed`));
  // For tests: the viewer's canvas holds the framebuffer at its own size.
  window.displayCanvas = () => screen.querySelector("canvas");
}

async function start() {
  if (!(await running(start))) return;
  const response = await fetch(`displays/${token}`, { cache: "no-store" });
  if (response.status !== 200) {
    show(response.status === 410 ? "terminated" : "error", (await response.text()).trim());
    return;
  }
  const displays = await response.json();
  if (displays.length === 0) {
    show("error", "the task offers no displays");
    return;
  }
  const wanted = new URLSearchParams(location.search).get("display");
  const select = document.getElementById("displays");
  for (const d of displays) select.add(new Option(`${d.name}: ${d.description}`, d.name));
  select.hidden = displays.length < 2;
  select.onchange = () => connect(displays.find((d) => d.name === select.value));
  const first = displays.find((d) => d.name === wanted) || displays[0];
  select.value = first.name;
  connect(first);
}

start();
