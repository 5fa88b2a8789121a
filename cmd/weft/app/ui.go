package app

import (
	"fmt"
	"net/http"

	"github.com/weftdb/weft/query/ui"
)

// withUI puts the built-in trace explorer (query/ui) in front of the query
// API when ui.enabled is true: the explorer answers its page at
// ui.path_prefix and its files below it, and hands every other request,
// every API route included, to api unchanged.
func (a *App) withUI(api http.Handler) (http.Handler, error) {
	if !a.cfg.UI.Enabled {
		return api, nil
	}
	h, err := ui.Handler(ui.Options{
		PathPrefix:          a.cfg.UI.PathPrefix,
		API:                 api,
		MultitenancyEnabled: a.cfg.MultitenancyEnabled,
		Version:             a.build.Version,
		Metrics:             a.registry,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot serve the UI (ui.path_prefix %q): %w", a.cfg.UI.PathPrefix, err)
	}
	return h, nil
}
