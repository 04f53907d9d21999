package testenv

import (
	"bytes"
	"encoding/json"
	"sync"

	"go.uber.org/zap/zapcore"
)

// maxLogLines bounds what Logs keeps: the last lines of a whole package run.
const maxLogLines = 50000

// Logs keeps every line the controllers of the test bed log, from debug
// level (logr V(1)) up, as decoded JSON, whatever TESTENV_DEBUG prints on
// stderr: tests check what an operator reads in the log (what is logged, at
// which level, and that no Secret value is).
var Logs = &LogBuffer{}

// LogBuffer is a bounded, concurrency-safe store of JSON log lines.
type LogBuffer struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   []string
	// seqs numbers the lines kept, counting from the first line written:
	// Since compares marks with them, whatever was dropped in between.
	seqs    []int
	written int
}

// Write takes one JSON line per call, as zap writes them.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		var entry map[string]any
		if json.Unmarshal(line, &entry) != nil {
			entry = map[string]any{"msg": string(line)}
		}
		b.lines = append(b.lines, entry)
		b.raw = append(b.raw, string(line))
		b.seqs = append(b.seqs, b.written)
		b.written++
	}
	if extra := len(b.lines) - maxLogLines; extra > 0 {
		b.lines, b.raw, b.seqs = b.lines[extra:], b.raw[extra:], b.seqs[extra:]
	}
	return len(p), nil
}

// Sync implements zapcore.WriteSyncer.
func (b *LogBuffer) Sync() error { return nil }

// Mark returns a mark for Since: the lines written so far.
func (b *LogBuffer) Mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.written
}

// Matching returns the lines kept for which keep is true, and their raw
// text.
func (b *LogBuffer) Matching(keep func(entry map[string]any) bool) (entries []map[string]any, raw []string) {
	return b.Since(0, keep)
}

// Since is Matching for the lines written after mark (Mark): a count of
// them only grows, however many older lines the buffer drops.
func (b *LogBuffer) Since(mark int, keep func(entry map[string]any) bool) (entries []map[string]any, raw []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, e := range b.lines {
		if b.seqs[i] >= mark && keep(e) {
			entries = append(entries, e)
			raw = append(raw, b.raw[i])
		}
	}
	return entries, raw
}

// core is the zap core that feeds the buffer: JSON, debug level and up.
func (b *LogBuffer) core() zapcore.Core {
	cfg := zapcore.EncoderConfig{
		MessageKey: "msg", LevelKey: "level", TimeKey: "ts", NameKey: "logger",
		EncodeLevel: zapcore.LowercaseLevelEncoder, EncodeTime: zapcore.ISO8601TimeEncoder,
		EncodeDuration: zapcore.StringDurationEncoder,
	}
	return zapcore.NewCore(zapcore.NewJSONEncoder(cfg), b, zapcore.DebugLevel)
}
