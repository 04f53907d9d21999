// Package window decides whether updates are allowed at a time, from a
// StageSet's update windows (SPEC §5), and when the next opening is.
package window
