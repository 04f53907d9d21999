package certs

import (
	"time"
)

// fresh returns new material: a new CA and a serving certificate it signed.
func (m *Manager) fresh(now time.Time) (*material, error) {
	ca, err := newCA(now, m.opts.CAValidity)
	if err != nil {
		return nil, err
	}
	serving, err := issue(ca, m.dnsNames, now, m.opts.Validity)
	if err != nil {
		return nil, err
	}
	return &material{ca: ca, serving: serving}, nil
}

// plan decides what to change in the material at now. It returns nil when
// nothing changes, else the new material and why, for the log.
//
// Any replica repairs what cannot be served at all (an expired CA or serving
// certificate, a serving certificate for other names), so that a webhook
// never starts with a certificate the API server refuses. Only the leader
// renews ahead of time, so that replicas do not rotate against each other.
//
// A CA is replaced in two steps, each its own Secret write: first the next
// CA is added, and the bundle published with it; on a later pass, once the
// caBundle read back holds it (published), it becomes the CA, signs a new
// serving certificate and the old CA stays in the bundle until it expires.
// So no replica ever serves a certificate the caBundle cannot verify, even
// if the leader dies between steps.
func (m *Manager) plan(cur *material, now time.Time, leader, published bool) (*material, string, error) {
	next := *cur
	caExpired := !now.Before(cur.ca.cert.NotAfter)
	if caExpired && (cur.next == nil || !now.Before(cur.next.cert.NotAfter)) {
		// Nothing the old CA signed verifies any more: start over.
		fresh, err := m.fresh(now)
		return fresh, "the CA expired", err
	}
	if cur.next != nil && ((leader && published) || caExpired) {
		// An expired current CA makes any replica promote: serving a
		// certificate of the next CA may fail, serving one of the old
		// CA fails for sure.
		serving, err := issue(cur.next, m.dnsNames, now, m.opts.Validity)
		if err != nil {
			return nil, "", err
		}
		next.previous, next.ca, next.next, next.serving = cur.ca.cert, cur.next, nil, serving
		return &next, "the next CA replaced the CA", nil
	}
	why := ""
	if leader && cur.next == nil && !now.Before(cur.ca.cert.NotAfter.Add(-m.opts.RenewBefore)) {
		ca, err := newCA(now, m.opts.CAValidity)
		if err != nil {
			return nil, "", err
		}
		next.next, why = ca, "the CA is due for renewal: published the next CA"
	}
	if err := cur.servingFits(m.dnsNames, now); err != nil ||
		(leader && next.next == nil && !now.Before(cur.serving.cert.NotAfter.Add(-m.opts.RenewBefore))) {
		reason := "the serving certificate is due for renewal"
		if err != nil {
			reason = err.Error()
		}
		serving, err := issue(cur.ca, m.dnsNames, now, m.opts.Validity)
		if err != nil {
			return nil, "", err
		}
		next.serving, why = serving, join(why, reason)
	}
	if leader && cur.previous != nil && !now.Before(cur.previous.NotAfter) {
		next.previous, why = nil, join(why, "the previous CA expired")
	}
	if why == "" {
		return nil, "", nil
	}
	return &next, why, nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
