// Package grpcjson registers the gRPC codec of weft's internal services
// (frontend to querier jobs, worker to backend scheduler): their messages
// are Go structs encoded as JSON, under the content subtype "json", between
// processes of the same weft version. Import it for its registration, and
// call with grpc.CallContentSubtype(Subtype).
package grpcjson

import (
	"encoding/json"

	"google.golang.org/grpc/encoding"
)

// Subtype is the gRPC content subtype of the codec.
const Subtype = "json"

type codec struct{}

func (codec) Name() string                       { return Subtype }
func (codec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (codec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

func init() { encoding.RegisterCodec(codec{}) }
