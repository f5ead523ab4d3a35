// Vite's `?raw` suffix: a module's source text (the contract test reads its own imports with it).
declare module "*?raw" {
  const source: string;
  export default source;
}
