package config

import (
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/yamlx"
)

// Tempo2Key is a key of a Grafana Tempo 2.x config that weft maps to one of
// its own keys, or does not need, and what it does with it.
type Tempo2Key struct {
	// Key is the dotted path of the key in the config file.
	Key string
	// Note says how the key maps to weft, or why it is not needed.
	Note string
}

// Tempo2WarningMsg is the message of the one warning that lists the Tempo
// 2.x keys of a config file, each with its Tempo2Key.Note.
const Tempo2WarningMsg = "config has Grafana Tempo 2.x keys: each is mapped to weft's key or not needed, as noted"

// Report is what Load found in a config file besides weft's own keys.
type Report struct {
	// Ignored are the Tempo keys weft does not use (yet), the highest of
	// each ignored subtree.
	Ignored []string
	// Tempo2 are the Tempo 2.x keys, each with what weft does with it: the
	// mapped ones first, then the others in the order of the file.
	Tempo2 []Tempo2Key
}

// Tempo2Args returns the Tempo 2.x keys as key/note pairs, for
// slog.Logger.Warn(Tempo2WarningMsg, r.Tempo2Args()...).
func (r Report) Tempo2Args() []any {
	args := make([]any, 0, 2*len(r.Tempo2))
	for _, k := range r.Tempo2 {
		args = append(args, k.Key, k.Note)
	}
	return args
}

// tempo2Blocks are the Tempo 2.x keys weft does not need, with why. A key
// listed here, or any key below it, is accepted; the whole subtree gets the
// one note.
var tempo2Blocks = []Tempo2Key{
	{"ingester", "not needed: weft's live_store (recent traces) and block_builder (blocks in object storage) do the ingester's work; its settings are not carried over"},
	{"ingester_client", "not needed: weft has no ingester"},
	{"compactor", "not needed: the backend-scheduler and backend-worker do the compactor's work (backend_scheduler, backend_worker blocks); of compactor.compaction, the retention and compaction keys they share are mapped (listed apart)"},
	{"metrics_generator_client", "not needed: spans reach the metrics-generator through the pipeline (Kafka between processes)"},
	{"querier.frontend_worker", "not needed: the query-frontend finds the queriers through memberlist"},
	{"search_enabled", "not needed: search is always on"},
	{"distributor.metrics_generator_enabled", "not needed: the pipeline feeds the metrics-generator; which processors run is overrides.defaults.metrics_generator.processors"},
	{"storage.trace.wal.encoding", "not needed: of storage.trace.wal weft uses only the path"},
	{"query_frontend.multi_tenant_queries_enabled", "not needed: weft has no cross-tenant queries; a query names one tenant"},
}

// tempo2Note returns the note of path when it is a Tempo 2.x key of
// tempo2Blocks, or a key below one.
func tempo2Note(path string) (Tempo2Key, bool) {
	for _, k := range tempo2Blocks {
		if path == k.Key || strings.HasPrefix(path, k.Key+".") || strings.HasPrefix(path, k.Key+"[") {
			return k, true
		}
	}
	return Tempo2Key{}, false
}

// compactorMap is where the keys of Tempo 2's compactor.compaction go.
var compactorMap = []struct{ from, to string }{
	{"block_retention", "backend_worker.compaction.block_retention"},
	{"compacted_block_retention", "backend_worker.compaction.compacted_block_retention"},
	{"compaction_window", "backend_scheduler.provider.compaction.compaction.compaction_window"},
	{"max_compaction_objects", "backend_scheduler.provider.compaction.compaction.max_compaction_objects"},
	{"max_block_bytes", "backend_scheduler.provider.compaction.compaction.max_block_bytes"},
	{"compaction_cycle", "backend_scheduler.provider.compaction.compaction.compaction_cycle"},
}

// mapTempo2 rewrites the Tempo 2.x keys of doc that have a meaning in weft
// into weft's keys, before doc is decoded, and returns a note for each.
// A weft key set in the file wins over the Tempo 2.x key mapped to it. The
// value nodes are shared, not copied, so that an error in one still names
// its line. compactor is left in place (the Unknown hook of Load drops it
// whole, with a note), so that an anchor in it stays whole; the keys of the
// flat form of overrides are removed, as weft's overrides block has no
// place for them.
func mapTempo2(doc *yaml.Node) []Tempo2Key {
	root := yamlx.Root(doc)
	if root == nil {
		return nil
	}
	var notes []Tempo2Key

	// auth_enabled: Tempo 2's name of multitenancy_enabled.
	if v := yamlx.Get(root, "auth_enabled"); v != nil {
		note := "mapped to multitenancy_enabled"
		if yamlx.Get(root, "multitenancy_enabled") != nil {
			note = "not used: multitenancy_enabled is set and wins"
		} else {
			yamlx.Set(root, "multitenancy_enabled", v)
		}
		yamlx.Delete(root, "auth_enabled")
		notes = append(notes, Tempo2Key{"auth_enabled", note})
	}

	// compactor.compaction: retention and compaction settings.
	if c := yamlx.Get(yamlx.Get(root, "compactor"), "compaction"); c != nil && c.Kind == yaml.MappingNode {
		for _, m := range compactorMap {
			v := yamlx.Get(c, m.from)
			if v == nil {
				continue
			}
			if yamlx.GetPath(root, m.to) != nil {
				notes = append(notes, Tempo2Key{"compactor.compaction." + m.from, "not used: " + m.to + " is set and wins"})
				continue
			}
			if yamlx.SetPath(root, m.to, v) {
				notes = append(notes, Tempo2Key{"compactor.compaction." + m.from, "mapped to " + m.to})
			}
		}
	}

	// The flat (legacy) form of overrides: its keys beside defaults.
	if o := yamlx.Get(root, "overrides"); o != nil && o.Kind == yaml.MappingNode {
		for _, k := range overrides.MapLegacy(o, root, "overrides.defaults", IsTempoOverridesKey) {
			notes = append(notes, Tempo2Key{"overrides." + k.Key, k.Note})
		}
	}
	// The local-blocks processor of Tempo 2's metrics-generator, which
	// served TraceQL metrics: weft answers those from its live-stores and
	// blocks.
	if p := yamlx.GetPath(root, "overrides.defaults.metrics_generator.processors"); p != nil && p.Kind == yaml.SequenceNode {
		kept := p.Content[:0]
		for _, it := range p.Content {
			if it.Kind == yaml.ScalarNode && it.Value == localBlocksProcessor {
				notes = append(notes, Tempo2Key{"overrides.defaults.metrics_generator.processors[" + localBlocksProcessor + "]",
					"not needed: weft runs TraceQL metrics queries on its live-stores and blocks; the processor is dropped from the list"})
				continue
			}
			kept = append(kept, it)
		}
		p.Content = kept
	}
	return notes
}

// localBlocksProcessor is the name of Tempo 2's local-blocks processor.
const localBlocksProcessor = "local-blocks"
