package certs

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// maxConflicts bounds the re-reads of one pass when other replicas keep
// writing the Secret; the next pass starts over.
const maxConflicts = 5

// read gets the Secret live and parses it. A NotFound error is returned as
// it is.
func (m *Manager) read(ctx context.Context) (*corev1.Secret, *material, error) {
	secret := &corev1.Secret{}
	if err := m.opts.Reader.Get(ctx, m.key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("reading the webhook certificate Secret %s: %w", m.key, err)
	}
	if secret.Type != SecretType {
		return nil, nil, fmt.Errorf("%s has type %q, not %q: %w; it is not overwritten: delete it (the controller then creates its own)", m.key, secret.Type, SecretType, ErrForeignSecret)
	}
	mat, err := parseMaterial(secret.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("the webhook certificate Secret %s is damaged (%w); delete it to have a new CA created", m.key, err)
	}
	return secret, mat, nil
}

// pass brings the Secret to what plan wants, serves its certificate and
// publishes the CA bundle. Conflicts with other replicas re-read the Secret
// and plan again, so a replica adopts the winner's certificate instead of
// writing its own over it.
func (m *Manager) pass(ctx context.Context, leader bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for range maxConflicts {
		err := m.ensure(ctx, leader)
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			return err
		}
		return m.syncBundle(ctx)
	}
	return fmt.Errorf("the webhook certificate Secret %s kept changing under %d attempts to write it", m.key, maxConflicts)
}

// ensure reads the Secret, creates or updates it as plan decides and serves
// the result. Conflict and AlreadyExists errors are returned unwrapped.
func (m *Manager) ensure(ctx context.Context, leader bool) error {
	now := m.opts.Clock.Now()
	secret, cur, err := m.read(ctx)
	if apierrors.IsNotFound(err) {
		mat, err := m.fresh(now)
		if err != nil {
			return err
		}
		secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: m.key.Namespace, Name: m.key.Name},
			Type:       SecretType,
			Data:       mat.data(),
		}
		if err := m.opts.Client.Create(ctx, secret); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return err
			}
			return fmt.Errorf("creating the webhook certificate Secret %s: %w", m.key, err)
		}
		m.opts.Log.Info("created the webhook certificate Secret", "secret", m.key)
		m.serve(secret, mat)
		return nil
	}
	if err != nil {
		return err
	}
	published := false
	if leader && cur.next != nil {
		if published, err = m.bundlePublished(ctx, cur); err != nil {
			return err
		}
	}
	next, why, err := m.plan(cur, now, leader, published)
	if err != nil {
		return fmt.Errorf("renewing the webhook certificate: %w", err)
	}
	if next == nil {
		m.serve(secret, cur)
		return nil
	}
	secret.Data = next.data()
	if err := m.opts.Client.Update(ctx, secret); err != nil {
		if apierrors.IsConflict(err) {
			return err
		}
		return fmt.Errorf("updating the webhook certificate Secret %s (%s): %w", m.key, why, err)
	}
	m.opts.Log.Info("renewed the webhook certificate", "secret", m.key, "why", why)
	m.serve(secret, next)
	return nil
}

// bundlePublished tells whether every webhook's caBundle holds the next CA.
func (m *Manager) bundlePublished(ctx context.Context, mat *material) (bool, error) {
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := m.opts.Reader.Get(ctx, client.ObjectKey{Name: m.opts.WebhookConfigName}, vwc); err != nil {
		return false, fmt.Errorf("reading the ValidatingWebhookConfiguration %s: %w", m.opts.WebhookConfigName, err)
	}
	for _, w := range vwc.Webhooks {
		if !bundleHolds(w.ClientConfig.CABundle, mat.next.cert) {
			return false, nil
		}
	}
	return len(vwc.Webhooks) > 0, nil
}

// syncBundle sets the caBundle of every webhook of the configuration to the
// bundle of the Secret.
//
// It reads the configuration first and the Secret after, and writes with the
// configuration's resourceVersion. Whoever writes the Secret updates the
// bundle after, so a bundle computed here is never older than one already
// written: had a newer one been written before our read of the
// configuration, our read of the Secret sees its source; written after, our
// update conflicts and starts over. A replica with a stale Secret can thus
// never take a CA out of caBundle that a newer Secret still needs.
func (m *Manager) syncBundle(ctx context.Context) error {
	name := m.opts.WebhookConfigName
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := m.opts.Reader.Get(ctx, client.ObjectKey{Name: name}, vwc); err != nil {
			return fmt.Errorf("reading the ValidatingWebhookConfiguration %s: %w", name, err)
		}
		_, mat, err := m.read(ctx)
		if err != nil {
			if apierrors.IsNotFound(err) {
				return errors.New("the webhook certificate Secret was deleted")
			}
			return err
		}
		bundle := mat.bundle(m.opts.Clock.Now())
		changed := false
		for i := range vwc.Webhooks {
			if !bytes.Equal(vwc.Webhooks[i].ClientConfig.CABundle, bundle) {
				vwc.Webhooks[i].ClientConfig.CABundle, changed = bundle, true
			}
		}
		if !changed {
			return nil
		}
		if err := m.opts.Client.Update(ctx, vwc); err != nil {
			if apierrors.IsConflict(err) {
				return err
			}
			return fmt.Errorf("updating the caBundle of the ValidatingWebhookConfiguration %s: %w", name, err)
		}
		m.opts.Log.Info("updated the webhook caBundle", "config", name, "webhooks", len(vwc.Webhooks))
		return nil
	})
	return err
}
