package kafka

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// closedPort returns 127.0.0.1:<a port nothing listens on>.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentBroker accepts connections and never answers.
func silentBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln.Addr().String()
}

// A publish to brokers that cannot be reached fails within WriteTimeout
// and a small slack, naming the broker.
func TestPublishUnreachableFailsInTime(t *testing.T) {
	const writeTimeout = 2 * time.Second
	const slack = 1500 * time.Millisecond
	for _, tc := range []struct {
		name       string
		addr       func(*testing.T) string
		autoCreate bool
	}{
		{"closed port, auto-create", closedPort, true},
		{"closed port, no auto-create", closedPort, false},
		{"silent broker, auto-create", silentBroker, true},
		{"silent broker, no auto-create", silentBroker, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := tc.addr(t)
			cfg := DefaultConfig()
			cfg.Address = Brokers{addr}
			cfg.Version = DevBrokerVersion
			cfg.WriteTimeout = writeTimeout
			cfg.DialTimeout = 500 * time.Millisecond
			cfg.ReadTimeout = 1 * time.Second
			cfg.AutoCreateTopicEnabled = tc.autoCreate
			pub, err := NewPublisher(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- pub.Publish("weft-ingest.x", message.NewMessage(watermill.NewUUID(), nil)) }()
			select {
			case err := <-done:
				took := time.Since(start)
				if err == nil {
					t.Fatal("Publish succeeded without a broker")
				}
				if !strings.Contains(err.Error(), addr) {
					t.Errorf("the error does not name the broker %s: %v", addr, err)
				}
				t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
			case <-time.After(writeTimeout + slack):
				t.Fatalf("Publish still running after write_timeout %s + %s", writeTimeout, slack)
			}
		})
	}
}
