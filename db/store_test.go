package db_test

import (
	"context"
	"os"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/db/pgtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

func openStore(t testing.TB, dsn string) *db.Store {
	t.Helper()
	cfg := db.DefaultConfig()
	s, err := db.Open(context.Background(), dsn, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func newStore(t *testing.T) (*db.Store, string) {
	t.Helper()
	dsn := pg.NewDatabase(t)
	return openStore(t, dsn), dsn
}

func ptr[T any](v T) *T { return &v }

// ok turns (value, error) into a function that fails the test on error:
// n := ok(s.CreateNetwork(ctx, spec))(t).
func ok[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantErrType(t *testing.T, err error, typ string) {
	t.Helper()
	e, ok := db.AsError(err)
	if !ok {
		t.Fatalf("error = %v, want a db.Error of type %s", err, typ)
	}
	if e.Type != typ {
		t.Fatalf("error type = %s (%s), want %s", e.Type, e.Message, typ)
	}
}

func testLogger(t testing.TB) *zap.Logger { return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)) }

// ok2 is ok for calls returning two values and an error.
func ok2[T, U any](v T, u U, err error) func(testing.TB) (T, U) {
	return func(t testing.TB) (T, U) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v, u
	}
}

// ensureVLANs is EnsureLocalVLANs for one host.
func ensureVLANs(ctx context.Context, s *db.Store, host string, nets []string) (map[string]uint16, error) {
	m, err := s.EnsureLocalVLANs(ctx, map[string][]string{host: nets})
	return m[host], err
}

// releaseVLANs is ReleaseLocalVLANs for one host.
func releaseVLANs(ctx context.Context, s *db.Store, host string, nets []string) error {
	return s.ReleaseLocalVLANs(ctx, map[string][]string{host: nets})
}
