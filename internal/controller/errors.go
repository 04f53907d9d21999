package controller

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/integrity"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/snapshot"
)

// runError is how a phase of a run reports failure: the error carries the
// Ready reason it ends with and how the controller goes on. One place
// (finishRun) turns it into conditions, an event and a metric.
type runError struct {
	// reason is the Ready reason (stagesetv1.*Reason).
	reason string
	// err is the underlying error; its message is the Ready message.
	err error
	// terminal errors cannot heal without a spec change: Stalled=True and
	// no requeue.
	terminal bool
	// waiting errors are expected to heal by themselves (a source or a
	// dependency not ready yet): requeue after the dependency interval with
	// no error, so no exponential backoff and no error log.
	waiting bool
	// bookkeeping errors are the API server failing the controller's own
	// records (a status patch, a ledger write): nothing the StageSet asked
	// for failed. No onFailure action, no rollback, no failure reported:
	// the workqueue retries the run with its backoff, Reconciling stays.
	bookkeeping bool
	// stage is the stage the error happened at, if any.
	stage string
	// requeueAfter overrides the requeue of a waiting error.
	requeueAfter time.Duration
}

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// failed returns a transient error: retried after spec.retryInterval.
func failed(reason string, err error) *runError {
	return &runError{reason: reason, err: err}
}

// stalled returns a terminal error: Stalled until the spec changes.
func stalled(reason string, err error) *runError {
	return &runError{reason: reason, err: err, terminal: true}
}

// waiting returns an error that waits on something outside the StageSet.
func waiting(reason string, err error) *runError {
	return &runError{reason: reason, err: err, waiting: true}
}

// bookkeepingFailed returns the error of a failed write of the controller's
// own records.
func bookkeepingFailed(err error) *runError {
	return &runError{reason: stagesetv1.ProgressingReason, err: err, bookkeeping: true}
}

// isBookkeeping tells whether err is a bookkeepingFailed error.
func isBookkeeping(err error) bool {
	var re *runError
	return errors.As(err, &re) && re.bookkeeping
}

// transientAPIError tells whether a failed read or write of the
// controller's own records is the API server or the network failing for
// their own reasons — a conflict, throttling, a 5xx answer, a server
// timeout, a refused, reset or timed out connection — worth a retry rather
// than a verdict on the StageSet. Content that failed verification or is
// not the controller's is never transient, and neither is an error of
// unknown kind: retrying it silently for ever would hide it.
func transientAPIError(err error) bool {
	if errors.Is(err, integrity.ErrUnverified) || errors.Is(err, snapshot.ErrForeign) || errors.Is(err, migration.ErrNotALedger) {
		return false
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		return code == http.StatusConflict || code == http.StatusTooManyRequests || code >= http.StatusInternalServerError ||
			apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err)
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// stageFailed returns the error of a stage, with the message form of SPEC §9:
// stage "<name>" failed: <error>.
func stageFailed(reason, stage string, err error) *runError {
	return &runError{reason: reason, stage: stage, err: fmt.Errorf("stage %q failed: %w", stage, err)}
}

// asRunError classifies any error: a *runError as it is, anything else as a
// transient failure with the given reason.
func asRunError(err error, fallbackReason string) *runError {
	var re *runError
	if errors.As(err, &re) {
		return re
	}
	return failed(fallbackReason, err)
}
