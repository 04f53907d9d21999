// Package source resolves the Flux sources a StageSet's stages read from and
// fetches their artifacts.
//
// A run first resolves every distinct source reference (Resolver.Resolve):
// the source must exist, be Ready and serve an artifact, otherwise the run
// waits (NotReadyError) or is refused (AccessDeniedError). It then fetches
// each distinct artifact once (Cache.Get over Fetcher.Fetch): downloaded,
// digest-verified, size-capped and extracted without letting any entry or
// link leave the extraction directory (ArtifactError).
package source
