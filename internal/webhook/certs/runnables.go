package certs

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
)

// AddToManager adds the renewer, which runs on the leader only, and the
// reloader, which runs on every replica.
func (m *Manager) AddToManager(mgr ctrl.Manager) error {
	if err := mgr.Add(renewer{m}); err != nil {
		return err
	}
	return mgr.Add(reloader{m})
}

// renewer checks expiry every CheckInterval and renews what is due. A failed
// attempt is retried after RetryInitial, doubling up to RetryMax, so a
// forbidden update or an API server outage is neither hammered nor given up
// on.
type renewer struct{ m *Manager }

// NeedLeaderElection makes only the leader renew, so replicas do not rotate
// against each other; the API server would order them, but each rotation
// would be wasted.
func (renewer) NeedLeaderElection() bool { return true }

func (r renewer) Start(ctx context.Context) error {
	failures := 0
	for {
		wait := r.m.opts.CheckInterval
		if err := r.m.Renew(ctx); err != nil {
			failures++
			wait = backoff(r.m.opts.RetryInitial, r.m.opts.RetryMax, failures)
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.m.opts.Clock.After(wait):
		}
	}
}

// backoff returns the wait after the n-th failure in a row (n ≥ 1).
func backoff(initial, limit time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// reloader re-reads the Secret every ReloadInterval and serves its
// certificate when it changed. A poll of one Secret by name needs only the
// get verb, costs one small request per interval and cannot miss an update
// the way a dropped watch can; ReloadInterval is far below any sensible
// RenewBefore, so a renewed certificate is served long before the old one
// expires.
type reloader struct{ m *Manager }

// NeedLeaderElection makes every replica reload, the leader included.
func (reloader) NeedLeaderElection() bool { return false }

func (r reloader) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.m.opts.Clock.After(r.m.opts.ReloadInterval):
		}
		if err := r.m.Reload(ctx); err != nil && ctx.Err() == nil {
			// Keep serving the certificate loaded: it stays valid for
			// RenewBefore after the leader renewed it.
			msg := "reloading the webhook certificate failed; serving the one loaded"
			if apierrors.IsNotFound(err) {
				msg = "the webhook certificate Secret is gone; serving the one loaded until the leader recreates it"
			}
			r.m.opts.Log.Error(err, msg, "secret", r.m.key)
		}
	}
}
