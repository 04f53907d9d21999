// Package migration holds the parts of versioned migrations (SPEC §6) that
// need no running controller: telling migration Jobs apart from a stage's
// other objects, ordering them by version, naming the Job that runs each one
// deterministically, and the ledger that records completed migrations
// durably, outside the StageSet status.
//
// Running the Jobs, waiting on them and reporting events is the
// controller's part; it calls Split, JobName, Ledger.Load and Ledger.Record.
package migration
