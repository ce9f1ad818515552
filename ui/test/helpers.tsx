import { render, screen } from "@testing-library/preact";
import { App } from "../src/App";

/** Renders the whole window and waits until the first page is there. */
export async function renderApp() {
  const r = render(<App />);
  await screen.findByTestId("tab-settings");
  return r;
}

export const byId = (id: string) => screen.getByTestId(id);
export const findId = (id: string) => screen.findByTestId(id);
