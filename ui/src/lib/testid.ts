/** A data-testid-safe form of an id from the network (anything else becomes "_"). */
export function tid(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, "_");
}
