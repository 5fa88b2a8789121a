package app

import (
	"encoding/json"

	spb "google.golang.org/genproto/googleapis/rpc/status"
)

type jsonRaw = json.RawMessage

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

type statusMsg struct{ s spb.Status }

func (m *statusMsg) pb() *spb.Status    { return &m.s }
func (m *statusMsg) GetMessage() string { return m.s.GetMessage() }
