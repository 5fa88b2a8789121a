package config

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Show redacts the S3 secret key, Kafka's SASL password and remote
// write's credentials, shows the rest, and its modes give the defaults and
// what differs from them.
func TestShowRedactsSecrets(t *testing.T) {
	c := Default()
	c.Storage.Trace.Store.Backend = "s3"
	c.Storage.Trace.Store.S3.Bucket = "traces-bucket"
	c.Storage.Trace.Store.S3.AccessKey = "AKIDEXAMPLE"
	c.Storage.Trace.Store.S3.SecretKey = "s3-secret-value"
	c.Ingest.Kafka.SASL.Username = "weft"
	c.Ingest.Kafka.SASL.Password = "kafka-secret-value"
	c.Overrides.Defaults.MetricsGenerator.RemoteWriteHeaders = map[string]string{"Authorization": "Bearer rw-secret-value", "X-Team": "blue"}
	out, err := c.Show(ShowAll)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, secret := range []string{"s3-secret-value", "kafka-secret-value", "rw-secret-value"} {
		if strings.Contains(s, secret) {
			t.Errorf("the shown configuration holds %q:\n%s", secret, s)
		}
	}
	for _, shown := range []string{"traces-bucket", "AKIDEXAMPLE", "secret_key: '" + Redacted + "'", "X-Team: blue", "username: weft"} {
		if !strings.Contains(s, shown) {
			t.Errorf("the shown configuration lacks %q:\n%s", shown, s)
		}
	}

	out, err = c.Show(ShowDiff)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := yaml.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	if _, ok := d["storage"]; !ok || d["server"] != nil || strings.Contains(string(out), "s3-secret-value") {
		t.Errorf("diff:\n%s", out)
	}
	out, err = c.Show(ShowDefaults)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "traces-bucket") || !strings.Contains(string(out), "http_listen_port: 3200") {
		t.Errorf("defaults:\n%s", out)
	}
	if _, err := c.Show("everything"); err == nil || !strings.Contains(err.Error(), `"everything"`) {
		t.Errorf("mode everything: %v", err)
	}
}
