// What both pages share: the token (from the link's fragment, which browsers
// never send to a server), the page's state and message, and URLs relative to the
// page, so that the pages work behind a reverse proxy's path.
export const token = location.hash.slice(1);

export function show(state, message) {
  document.body.dataset.state = state;
  document.getElementById("status").textContent = message;
}

export function socketUrl(path) {
  const url = new URL(path, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  return url.href;
}

// Asks the server about the session: true when it runs; otherwise the page says
// why (and retries while the sandbox starts).
export async function running(retry) {
  if (!/^[0-9a-f]{48}$/.test(token)) {
    show("unknown", "this link has no valid token: open the link from the task's artifacts");
    return false;
  }
  let response;
  try {
    response = await fetch(`session/${token}`, { cache: "no-store" });
  } catch (e) {
    show("error", `the worker cannot be reached: ${e}`);
    return false;
  }
  if (response.status === 200) return true;
  const text = (await response.text()).trim();
  if (response.status === 503) {
    show("starting", text);
    setTimeout(retry, 1000);
  } else if (response.status === 410) {
    show("terminated", text);
  } else if (response.status === 404) {
    show("unknown", text);
  } else {
    show("error", `${response.status}: ${text}`);
  }
  return false;
}

// After a connection closed: the session's state says whether the task ended.
export async function afterClose(fallback) {
  const response = await fetch(`session/${token}`, { cache: "no-store" }).catch(() => null);
  if (response && response.status === 410) {
    show("terminated", (await response.text()).trim());
  } else {
    show("closed", fallback);
  }
}
