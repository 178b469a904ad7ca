// prom-client's own files for the two classes the tick uses (lib/metrics/registry.ts), typed as its index types them.
declare module 'prom-client/lib/gauge.js' {
  export { Gauge as default } from 'prom-client';
}
declare module 'prom-client/lib/registry.js' {
  export { Registry as default } from 'prom-client';
}
