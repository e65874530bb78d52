package envflag

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

type listValue []string

func (l *listValue) String() string     { return strings.Join(*l, ",") }
func (l *listValue) Set(v string) error { *l = append(*l, v); return nil }

type flags struct {
	fs      *flag.FlagSet
	api     *string
	noauth  *bool
	timeout *time.Duration
	rate    *float64
	n       *int
	list    listValue
}

func newFlags() *flags {
	f := &flags{fs: flag.NewFlagSet("t", flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.api = f.fs.String("api", "http://127.0.0.1:9696", "API `URL`")
	f.noauth = f.fs.Bool("noauth", false, "no auth")
	f.timeout = f.fs.Duration("poll-timeout", 30*time.Second, "timeout")
	f.rate = f.fs.Float64("packet-in.rate", 1000, "rate")
	f.n = f.fs.Int("n", 1, "count")
	f.fs.Var(&f.list, "controller", "controller (repeatable)")
	return f
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestVar(t *testing.T) {
	for _, c := range []struct{ prefix, name, want string }{
		{"DVRFLOW", "db-url", "DVRFLOW_DB_URL"},
		{"dvrflow", "of-tls-cert", "DVRFLOW_OF_TLS_CERT"},
		{"DVRFLOW", "packet-in.rate", "DVRFLOW_PACKET_IN_RATE"},
		{"", "api", "API"},
	} {
		if got := Var(c.prefix, c.name); got != c.want {
			t.Errorf("Var(%q, %q) = %q, want %q", c.prefix, c.name, got, c.want)
		}
	}
}

func TestApplySetsUnsetFlagsOnly(t *testing.T) {
	f := newFlags()
	if err := f.fs.Parse([]string{"--api", "http://cli:1"}); err != nil {
		t.Fatal(err)
	}
	err := Apply(f.fs, "DVRFLOW", env(map[string]string{
		"DVRFLOW_API":            "http://env:2", // the flag wins
		"DVRFLOW_NOAUTH":         "true",
		"DVRFLOW_POLL_TIMEOUT":   "5s",
		"DVRFLOW_PACKET_IN_RATE": "2.5",
		"DVRFLOW_CONTROLLER":     "tcp:10.0.0.1:6653",
		"DVRFLOW_N":              "", // empty: unset
		"OTHER_N":                "7",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if *f.api != "http://cli:1" || !*f.noauth || *f.timeout != 5*time.Second || *f.rate != 2.5 || *f.n != 1 ||
		len(f.list) != 1 || f.list[0] != "tcp:10.0.0.1:6653" {
		t.Fatalf("got api=%s noauth=%v timeout=%v rate=%v n=%d list=%v", *f.api, *f.noauth, *f.timeout, *f.rate, *f.n, f.list)
	}
}

func TestApplyBadValueNamesVariableAndChangesNothing(t *testing.T) {
	for _, c := range []struct{ name, val string }{
		{"DVRFLOW_POLL_TIMEOUT", "soon"},
		{"DVRFLOW_NOAUTH", "maybe"},
		{"DVRFLOW_N", "1.5"},
		{"DVRFLOW_PACKET_IN_RATE", "fast"},
	} {
		f := newFlags()
		if err := f.fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
		// DVRFLOW_API sorts before every bad one and is valid: it must not be set either.
		err := Apply(f.fs, "DVRFLOW", env(map[string]string{"DVRFLOW_API": "http://env:2", "DVRFLOW_CONTROLLER": "tcp:x", c.name: c.val}))
		if err == nil {
			t.Fatalf("%s=%s: no error", c.name, c.val)
		}
		if !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s=%s: error does not name the variable: %v", c.name, c.val, err)
		}
		if *f.api != "http://127.0.0.1:9696" || len(f.list) != 0 {
			t.Errorf("%s=%s: flags changed by a failed Apply: api=%s list=%v", c.name, c.val, *f.api, f.list)
		}
	}
}

type failing struct{}

func (failing) String() string     { return "" }
func (failing) Set(v string) error { return errors.New("never") }

func TestApplyCustomValueError(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Var(failing{}, "weird-thing", "x")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	err := Apply(fs, "P", env(map[string]string{"P_WEIRD_THING": "v"}))
	if err == nil || !strings.Contains(err.Error(), "P_WEIRD_THING") || !strings.Contains(err.Error(), "never") {
		t.Fatalf("err = %v", err)
	}
}

func TestApplyBeforeParse(t *testing.T) {
	if err := Apply(newFlags().fs, "DVRFLOW", env(nil)); err == nil {
		t.Fatal("Apply before Parse: no error")
	}
}

func TestUsageListsEveryFlag(t *testing.T) {
	f := newFlags()
	var buf bytes.Buffer
	f.fs.SetOutput(&buf)
	SetUsage(f.fs, "DVRFLOW", "usage: t [flags]")
	if err := f.fs.Parse([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	out := buf.String()
	for _, want := range []string{
		"usage: t [flags]",
		"--api URL", "API URL", `env DVRFLOW_API, default "http://127.0.0.1:9696"`,
		"--noauth", "(env DVRFLOW_NOAUTH)",
		"--poll-timeout duration", `env DVRFLOW_POLL_TIMEOUT, default "30s"`,
		"env DVRFLOW_PACKET_IN_RATE",
		"--controller value", "(env DVRFLOW_CONTROLLER)",
		"--n int", `env DVRFLOW_N, default "1"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
}

func TestAlias(t *testing.T) {
	newFS := func() (*flag.FlagSet, *string) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		out := fs.String("output", "table", "output `format`")
		Alias(fs, "o", "output")
		return fs, out
	}
	// The alias given on the command line counts as the flag: the environment does not
	// override it.
	fs, out := newFS()
	if err := fs.Parse([]string{"-o", "json"}); err != nil {
		t.Fatal(err)
	}
	if err := Apply(fs, "DVRFLOW", env(map[string]string{"DVRFLOW_OUTPUT": "wide", "DVRFLOW_O": "x"})); err != nil || *out != "json" {
		t.Fatalf("-o json with DVRFLOW_OUTPUT=wide: %q, %v", *out, err)
	}
	// The alias has no variable of its own.
	fs, out = newFS()
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := Apply(fs, "DVRFLOW", env(map[string]string{"DVRFLOW_O": "x"})); err != nil || *out != "table" {
		t.Fatalf("DVRFLOW_O: %q, %v", *out, err)
	}
	if err := Apply(fs, "DVRFLOW", env(map[string]string{"DVRFLOW_OUTPUT": "json"})); err != nil || *out != "json" {
		t.Fatalf("DVRFLOW_OUTPUT: %q, %v", *out, err)
	}
	var buf bytes.Buffer
	PrintDefaults(&buf, fs, "DVRFLOW")
	if got := buf.String(); !strings.Contains(got, "--output format, -o\n") || strings.Contains(got, "DVRFLOW_O,") ||
		strings.Contains(got, "DVRFLOW_O)") || strings.Count(got, "--") != 1 {
		t.Fatalf("usage:\n%s", got)
	}
}
