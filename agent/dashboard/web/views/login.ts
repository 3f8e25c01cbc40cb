/** The login form: name and password, posted to /api/login (the session cookie is HttpOnly). */
import { api } from "../api.ts";
import { h } from "../dom.ts";

export function loginView(done: () => void): HTMLElement {
  const name = h("input", { name: "name", autocomplete: "username", required: "" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: "" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "login" }, h("h2", {}, "Log in"), h("label", {}, "Name ", name), h("label", {}, "Password ", password), h("button", { type: "submit" }, "Log in"), error);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    error.textContent = "";
    api.login(name.value, password.value).then(done, (err: Error) => (error.textContent = err.message));
  });
  return form;
}
