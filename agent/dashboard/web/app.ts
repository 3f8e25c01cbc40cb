/**
 * The dashboard page: a hash router over three views (login, fleet overview, agent), and one
 * EventSource on /api/live whose change notices make the shown view refetch what it shows.
 */
import { api } from "./api.ts";
import { h } from "./dom.ts";
import { agentView } from "./views/agent.ts";
import { loginView } from "./views/login.ts";
import { overviewView } from "./views/overview.ts";

export interface View {
  /** Called with the agents that changed (throttled by the server to every 250 ms). */
  onChange(agents: string[], more: boolean): void;
  dispose(): void;
}

let current: View | undefined;
let live: EventSource | undefined;

async function route(): Promise<void> {
  current?.dispose();
  current = undefined;
  const root = document.getElementById("view")!;
  root.replaceChildren();
  const s = api.current() ?? (await api.session());
  const who = document.getElementById("whoami")!;
  if (!s) {
    live?.close();
    live = undefined;
    who.replaceChildren();
    root.append(loginView(() => void route()));
    return;
  }
  who.replaceChildren(
    h("span", { "data-testid": "user" }, `${s.user} (${s.role})`),
    " ",
    h("button", { onclick: () => void api.logout().then(route) }, "Log out"),
  );
  if (!live) {
    live = new EventSource("/api/live");
    live.addEventListener("change", (e) => {
      const d = JSON.parse((e as MessageEvent<string>).data) as { agents: string[]; more: boolean };
      current?.onChange(d.agents, d.more);
    });
  }
  const m = /^#\/agent\/([A-Za-z0-9._-]{1,64})$/.exec(location.hash);
  current = m ? agentView(root, m[1]!) : overviewView(root);
}

window.addEventListener("hashchange", () => void route());
void route();
