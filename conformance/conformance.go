// Package conformance holds what dvrflow needs to run OpenStack's own API test suites,
// tempest's network API tests and neutron-tempest-plugin's API tests, against its Neutron
// API: tempest's configuration for a dvrflow cloud, the skip list (a test per line, with
// the missing feature it waits for) and the reading of a run's results against that list.
// cmd/dvrflow-conformance starts the cloud and runs the suites.
package conformance

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// Suites are the test suites run, by the test ID prefix that names each.
var Suites = []Suite{
	{Name: "tempest", Prefix: "tempest.api.network."},
	{Name: "neutron-tempest-plugin", Prefix: "neutron_tempest_plugin.api."},
}

// Suite is one API test suite.
type Suite struct {
	Name   string
	Prefix string
}

// Regex selects every test of the suites, as `tempest run --regex` takes it.
func Regex() string {
	parts := make([]string, len(Suites))
	for i, s := range Suites {
		parts[i] = regexp.QuoteMeta(s.Prefix)
	}
	return "^(" + strings.Join(parts, "|") + ")"
}

// Skip is a line of the skip list: the tests its regular expression finds (anywhere in
// the test ID, as stestr searches) are not run, because of Cause.
type Skip struct {
	Line  int
	Regex *regexp.Regexp
	Cause string
}

// ReadSkipList reads a skip list in stestr's exclude-list format: a regular expression,
// then "#" and the cause; blank lines and lines starting with "#" are comments. Every
// entry must name its cause.
func ReadSkipList(r io.Reader) ([]Skip, error) {
	var skips []Skip
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		expr, cause, ok := strings.Cut(line, "#")
		expr, cause = strings.TrimSpace(expr), strings.TrimSpace(cause)
		if !ok || cause == "" {
			return nil, fmt.Errorf("skip list line %d: %q names no cause (regex # cause)", n, line)
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("skip list line %d: %w", n, err)
		}
		skips = append(skips, Skip{Line: n, Regex: re, Cause: cause})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read skip list: %w", err)
	}
	return skips, nil
}

// Skipped returns the skip list entry that excludes test, or nil.
func Skipped(skips []Skip, test string) *Skip {
	for i := range skips {
		if skips[i].Regex.MatchString(test) {
			return &skips[i]
		}
	}
	return nil
}

// Status is a test's outcome.
type Status string

// The outcomes a run reports (subunit's names).
const (
	StatusPass Status = "success"
	StatusFail Status = "fail" // subunit2csv writes "failure"
	StatusSkip Status = "skip" // skipped by the test itself (an extension or feature not enabled)
)

// Result is a test and its outcome.
type Result struct {
	Test   string
	Status Status
}

// ReadResults reads subunit2csv's output (test,status,start_time,stop_time). Tests
// reported twice (a class's setUpClass failure and its tests) keep their last status.
func ReadResults(r io.Reader) ([]Result, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	if len(rows) == 0 || len(rows[0]) < 2 || rows[0][0] != "test" || rows[0][1] != "status" {
		return nil, errors.New("read results: not subunit2csv's output (no test,status header)")
	}
	seen := map[string]int{}
	var out []Result
	for _, row := range rows[1:] {
		if len(row) < 2 {
			continue
		}
		st := Status(row[1])
		switch st {
		case "xfail":
			st = StatusPass
		case "failure", "uxsuccess", "exists", "inprogress":
			st = StatusFail
		}
		if i, ok := seen[row[0]]; ok {
			out[i].Status = st
			continue
		}
		seen[row[0]] = len(out)
		out = append(out, Result{Test: row[0], Status: st})
	}
	return out, nil
}

// Count is a suite's tally.
type Count struct {
	Pass, Fail, Skip, Listed int // Listed: on the skip list, not run
}

// Report is a run read against the suites' test list and the skip list.
type Report struct {
	Counts map[string]*Count // by suite name
	// Failed are the tests that failed and are not on the skip list: regressions or gaps
	// to fix or to list.
	Failed []string
	// Causes counts the listed tests by cause.
	Causes map[string]int
	// Unused are skip list entries that match no test.
	Unused []Skip
}

// Summarize reads results against all (every test ID the suites hold) and skips. A class
// fixture's result (setUpClass skipped because an extension is not listed, or failed)
// stands for each test of the class that has no result of its own; a test with no
// result at all (a worker died) counts as failed.
func Summarize(all []string, results []Result, skips []Skip) Report {
	rep := Report{Counts: map[string]*Count{}, Causes: map[string]int{}}
	for _, s := range Suites {
		rep.Counts[s.Name] = &Count{}
	}
	own := map[string]Status{}
	fixtures := map[string]Status{} // by class
	for _, r := range results {
		if _, class, ok := strings.Cut(r.Test, " ("); ok {
			class = strings.TrimSuffix(class, ")")
			if r.Status != StatusPass {
				fixtures[class] = r.Status
			}
			if r.Status == StatusFail && Skipped(skips, r.Test) == nil {
				rep.Failed = append(rep.Failed, r.Test)
			}
			continue
		}
		own[r.Test] = r.Status
	}
	used := map[int]bool{}
	for _, t := range all {
		c := rep.Counts[suiteOf(t)]
		if c == nil {
			continue
		}
		if sk := Skipped(skips, t); sk != nil {
			used[sk.Line] = true
			c.Listed++
			rep.Causes[sk.Cause]++
			continue
		}
		st, ownResult := own[t]
		if !ownResult {
			var classResult bool
			if st, classResult = fixtures[classOf(t)]; !classResult {
				st = StatusFail
				rep.Failed = append(rep.Failed, t+" (no result)")
			}
		}
		switch st {
		case StatusPass:
			c.Pass++
		case StatusSkip:
			c.Skip++
		default:
			c.Fail++
			if ownResult {
				rep.Failed = append(rep.Failed, t)
			}
		}
	}
	for _, sk := range skips {
		if !used[sk.Line] {
			rep.Unused = append(rep.Unused, sk)
		}
	}
	sort.Strings(rep.Failed)
	return rep
}

// classOf returns the class of a test ID: "pkg.module.Class.test_x[id-...]" is
// "pkg.module.Class".
func classOf(test string) string {
	test, _, _ = strings.Cut(test, "[")
	if i := strings.LastIndexByte(test, '.'); i >= 0 {
		return test[:i]
	}
	return test
}

// suiteOf returns the suite of a test ID ("" for none).
func suiteOf(test string) string {
	for _, s := range Suites {
		if strings.HasPrefix(test, s.Prefix) {
			return s.Name
		}
	}
	return ""
}

// Write prints the report: a line per suite, the listed tests by cause, the failures.
func (r Report) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-24s %6s %6s %6s %8s\n", "suite", "pass", "fail", "skip", "listed")
	for _, s := range Suites {
		c := r.Counts[s.Name]
		fmt.Fprintf(&b, "%-24s %6d %6d %6d %8d\n", s.Name, c.Pass, c.Fail, c.Skip, c.Listed)
	}
	if len(r.Causes) > 0 {
		causes := make([]string, 0, len(r.Causes))
		for c := range r.Causes {
			causes = append(causes, c)
		}
		sort.Slice(causes, func(i, j int) bool {
			if r.Causes[causes[i]] != r.Causes[causes[j]] {
				return r.Causes[causes[i]] > r.Causes[causes[j]]
			}
			return causes[i] < causes[j]
		})
		b.WriteString("\nskip list by cause:\n")
		for _, c := range causes {
			fmt.Fprintf(&b, "%6d  %s\n", r.Causes[c], c)
		}
	}
	for _, sk := range r.Unused {
		fmt.Fprintf(&b, "\nskip list line %d matches no test: %s", sk.Line, sk.Regex)
	}
	if len(r.Failed) > 0 {
		fmt.Fprintf(&b, "\n%d failed tests are not on the skip list:\n", len(r.Failed))
		for _, t := range r.Failed {
			fmt.Fprintf(&b, "  %s\n", t)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
