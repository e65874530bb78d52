// Package envflag lets every flag of a flag.FlagSet be set from the environment as well
// (12-factor configuration): flag --db-url of prefix DVRFLOW is read from DVRFLOW_DB_URL
// when it is not given on the command line. The command line always wins.
//
//	fs := flag.NewFlagSet("dvrctl", flag.ContinueOnError)
//	envflag.SetUsage(fs, "DVRFLOW", "usage: dvrctl [flags] command")
//	... define flags ...
//	if err := fs.Parse(args); err != nil { ... }
//	if err := envflag.Apply(fs, "DVRFLOW", os.Getenv); err != nil { ... }
package envflag

import (
	"flag"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Var returns the environment variable of flag name under prefix: dashes and dots become
// underscores and letters upper case (prefix "DVRFLOW", flag "db-url": DVRFLOW_DB_URL).
func Var(prefix, name string) string {
	v := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
	if prefix == "" {
		return v
	}
	return strings.ToUpper(prefix) + "_" + v
}

// Apply sets every flag of fs that was not given on the command line from its
// environment variable (see Var), read through getenv. Call it after fs.Parse. An empty
// variable counts as unset. A value the flag rejects is an error naming the variable.
// Values of the standard kinds (bool, numbers, durations) are all checked before any
// flag is set, so such an error changes no flag; a custom flag.Value can only be checked
// by setting it, so flags before it may have been set (callers stop on the error).
func Apply(fs *flag.FlagSet, prefix string, getenv func(string) string) error {
	if !fs.Parsed() {
		return fmt.Errorf("envflag: flag set %s applied before it was parsed", fs.Name())
	}
	aliases := aliasesOf(fs)
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name], given[aliases[f.Name]] = true, true })
	type set struct {
		f   *flag.Flag
		val string
	}
	var sets []set
	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || aliases[f.Name] != "" || firstErr != nil {
			return
		}
		name := Var(prefix, f.Name)
		val := getenv(name)
		if val == "" {
			return
		}
		// Check the value on a scratch flag of the same kind first where possible, so a
		// bad variable leaves every flag as it was.
		if err := tryValue(f, val); err != nil {
			firstErr = fmt.Errorf("environment variable %s=%q (flag --%s): %w", name, val, f.Name, err)
			return
		}
		sets = append(sets, set{f, val})
	})
	if firstErr != nil {
		return firstErr
	}
	for _, s := range sets {
		if err := fs.Set(s.f.Name, s.val); err != nil {
			return fmt.Errorf("environment variable %s=%q (flag --%s): %w", Var(prefix, s.f.Name), s.val, s.f.Name, err)
		}
	}
	return nil
}

// tryValue checks val against a fresh flag of f's kind (the standard kinds), so that a
// bad value is refused before any flag is set; values of other kinds are checked when
// they are set.
func tryValue(f *flag.Flag, val string) error {
	getter, ok := f.Value.(flag.Getter)
	if !ok {
		return nil
	}
	scratch := flag.NewFlagSet("scratch", flag.ContinueOnError)
	scratch.SetOutput(io.Discard)
	var want string
	switch getter.Get().(type) {
	case bool:
		scratch.Bool("v", false, "")
		want = "true or false"
	case int:
		scratch.Int("v", 0, "")
		want = "an integer"
	case int64:
		scratch.Int64("v", 0, "")
		want = "an integer"
	case uint:
		scratch.Uint("v", 0, "")
		want = "a non-negative integer"
	case uint64:
		scratch.Uint64("v", 0, "")
		want = "a non-negative integer"
	case float64:
		scratch.Float64("v", 0, "")
		want = "a number"
	case time.Duration:
		scratch.Duration("v", 0, "")
		want = "a duration such as 30s or 1m30s"
	default:
		return nil
	}
	if scratch.Set("v", val) != nil {
		return fmt.Errorf("want %s", want)
	}
	return nil
}

// Alias makes short (e.g. "o") another name of the flag long (e.g. "output"), which must
// be defined: it shares long's value, is shown with long by PrintDefaults and has no
// environment variable of its own.
func Alias(fs *flag.FlagSet, short, long string) {
	f := fs.Lookup(long)
	if f == nil {
		panic("envflag: alias " + short + " of undefined flag " + long)
	}
	fs.Var(f.Value, short, "same as --"+long)
}

// aliasesOf maps each alias (a flag sharing another flag's Value under a shorter name) to
// the flag it stands for.
func aliasesOf(fs *flag.FlagSet) map[string]string {
	out := map[string]string{}
	var all []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { all = append(all, f) })
	for _, a := range all {
		for _, b := range all {
			if a != b && len(a.Name) < len(b.Name) && sameValue(a.Value, b.Value) {
				out[a.Name] = b.Name
			}
		}
	}
	return out
}

func sameValue(a, b flag.Value) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta.Comparable() && a == b
}

// PrintDefaults writes every flag of fs to w with its argument type, usage text,
// environment variable and default, as `--help` shows them; an alias is shown with the
// flag it stands for.
func PrintDefaults(w io.Writer, fs *flag.FlagSet, prefix string) {
	aliases := aliasesOf(fs)
	shorts := map[string][]string{}
	for a, long := range aliases {
		shorts[long] = append(shorts[long], a)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if aliases[f.Name] != "" {
			return
		}
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		slices.Sort(shorts[f.Name])
		for _, a := range shorts[f.Name] {
			line += ", -" + a
		}
		fmt.Fprintln(w, line)
		for _, l := range strings.Split(usage, "\n") {
			fmt.Fprintln(w, "        "+l)
		}
		meta := "env " + Var(prefix, f.Name)
		if !isZeroDefault(f) {
			meta += fmt.Sprintf(", default %q", f.DefValue)
		}
		fmt.Fprintln(w, "        ("+meta+")")
	})
}

func isZeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "false", "[]":
		return true
	}
	return false
}

// SetUsage makes fs.Usage (what -h and --help print) write header, then every flag with
// PrintDefaults, to fs.Output().
func SetUsage(fs *flag.FlagSet, prefix, header string) {
	fs.Usage = func() {
		w := fs.Output()
		if header != "" {
			fmt.Fprintln(w, strings.TrimRight(header, "\n"))
		}
		fmt.Fprintln(w, "\nFlags (a flag not given is read from its environment variable):")
		PrintDefaults(w, fs, prefix)
	}
}
