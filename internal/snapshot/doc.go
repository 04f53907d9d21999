// Package snapshot stores the manifests of the last good rollout of a
// StageSet in Secrets of its namespace (SPEC §7), for rollback and for drift
// correction while a rollout is deferred.
package snapshot
