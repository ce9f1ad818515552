// The types the window receives and sends. They are generated from the Rust types into
// bindings.ts (`make bindings`); nothing here is written by hand, so the two cannot drift.
export type * from "./bindings";
