package pipelines

import (
	"os"
	"strings"
	"testing"
)

// docs/pipelines.md shows the built-in pipeline as it is.
func TestDocsShowDefaultPipeline(t *testing.T) {
	b, err := os.ReadFile("../docs/pipelines.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	const intro = "the pipeline built into the binary from\n`pipelines/default.yaml`:\n\n```yaml\n"
	i := strings.Index(doc, intro)
	if i < 0 {
		t.Fatalf("docs/pipelines.md does not introduce the default pipeline with %q", intro)
	}
	shown := doc[i+len(intro):]
	shown = shown[:strings.Index(shown, "```\n")]
	if shown != string(Default) {
		t.Errorf("docs/pipelines.md shows another default pipeline than pipelines/default.yaml:\n--- shown\n%s--- default.yaml\n%s", shown, Default)
	}
}
