import type { Finding, ScannerIdentity } from '../protocol/index.ts';

/** One image to scan, by digest, in the fleet's registry. */
export interface ImageToScan {
  /** registry host[:port] as in image references */
  registry: string;
  /** plain HTTP (a loopback development registry) */
  insecure: boolean;
  repository: string;
  digest: string;
}

export interface BackendResult {
  /** normalized: scanner-neutral, deduplicated, sorted */
  findings: Finding[];
  scanner: ScannerIdentity;
  /** answered from the (digest, DB build time) cache */
  cached: boolean;
}

/**
 * What the scanner pool runs a scan job with: grype (grype.ts) by default, or any Harbor scanner
 * adapter (harbor.ts). Every failure to produce a report is a FleetError E_SCAN_UNAVAILABLE, so
 * the gate fails closed whichever backend runs.
 */
export interface ScanBackend {
  readonly kind: 'grype' | 'harbor' | 'trivy';
  scan(image: ImageToScan, signal: AbortSignal): Promise<BackendResult>;
}
