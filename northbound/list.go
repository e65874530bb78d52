package northbound

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

// listParams are the query parameters that are not filters.
var listParams = map[string]bool{"fields": true, "sort_key": true, "sort_dir": true, "limit": true, "marker": true, "page_reverse": true}

// listing declares how a collection is listed.
type listing struct {
	// attrs are the attributes the collection may be filtered and sorted by: those of its
	// shape (Neutron's is_filter and is_sort_key), whether or not any item is listed.
	attrs map[string]bool
	// hidden are attributes it may be filtered by that Neutron does not show
	// (is_visible: false): the items carry them and respondList removes them.
	hidden map[string]bool
	// key is the attribute a marker names.
	key string
	// markerNotFound is the answer to a marker naming no item the caller sees, as
	// Neutron's plugin raises it loading the marker; nil: the marker is ignored and the
	// first page listed, as for the resources Neutron pages through its objects layer.
	markerNotFound func(marker string) error
	// tagged says the items have tags: tags, tags-any, not-tags and not-tags-any filter
	// them (tagFilters).
	tagged bool
}

func newListing(shape map[string]any, key string, markerNotFound func(string) error, hidden ...string) listing {
	l := listing{attrs: map[string]bool{}, hidden: map[string]bool{}, key: key, markerNotFound: markerNotFound}
	for k := range shape {
		l.attrs[k] = true
	}
	_, l.tagged = shape["tags"]
	for _, h := range hidden {
		l.hidden[h] = true
	}
	return l
}

func notFoundMarker(typ, format string) func(string) error {
	return func(id string) error { return notFound(typ, format, id) }
}

// listings declares every collection respondList serves, by its JSON key.
var listings = map[string]listing{
	"networks": newListing(networkShape(&topology.Network{}), "id",
		notFoundMarker("NetworkNotFound", "Network %s could not be found.")),
	// A subnet is shared when its network is (Neutron's hidden, filterable "shared").
	"subnets":     newListing(subnetShape(&topology.Subnet{}), "id", nil, "shared"),
	"subnetpools": newListing(subnetPoolShape(&topology.SubnetPool{}), "id", nil),
	"ports": newListing(portShape(&topology.Port{}, false), "id",
		notFoundMarker("PortNotFound", "Port %s could not be found.")),
	"routers": newListing(routerShape(&topology.Router{}), "id",
		notFoundMarker("RouterNotFound", "Router %s could not be found")),
	"floatingips": newListing(floatingIPShape(&topology.FloatingIP{}), "id",
		notFoundMarker("FloatingIPNotFound", "Floating IP %s could not be found")),
	"security_groups":      newListing(groupShape(&db.GroupWithRules{}), "id", nil),
	"security_group_rules": newListing(ruleShape(&topology.SecurityGroupRule{}), "id", nil),
	"agents": newListing(new(Server).agentShapes(&topology.Host{}, nil, time.Time{})[0], "id",
		notFoundMarker("AgentNotFound", "Agent %s could not be found.")),
	"dvr_hosts":     newListing(new(Server).hostShape(&topology.Host{}, time.Time{}), "host", nil),
	"dvr_host_macs": newListing(map[string]any{"host": "", "mac_address": ""}, "host", nil),
}

// pythonList formats names as Neutron's messages show a Python list of strings.
func pythonList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + n + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// queryKeys returns the distinct parameter names of the request in the order they come.
func queryKeys(raw string) []string {
	var keys []string
	seen := map[string]bool{}
	for _, part := range strings.Split(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if k != "" && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// respondList applies Neutron's list semantics to items (every item of the collection the
// caller sees) and writes {"<collection>": [...], "<collection>_links": [...]}: filters
// (?attr=value, repeated = any of; an attribute the collection has no filter for is 400,
// as with Neutron's filter-validation), sort_key/sort_dir, limit/marker/page_reverse
// pagination (native pagination as ML2 does it: ordered by the sort keys then id, a page
// starts after the marker, or ends before it when reversed, and is returned in the
// requested order) and fields= selection.
func respondList(c echo.Context, collection string, items []map[string]any) error {
	l, ok := listings[collection]
	if !ok {
		return fmt.Errorf("list %s: collection not declared in listings", collection)
	}
	q := c.QueryParams()
	var invalid []string
	for _, key := range queryKeys(c.Request().URL.RawQuery) {
		if !listParams[key] && !l.attrs[key] && !l.hidden[key] && !(l.tagged && tagFilters[key] != nil) {
			invalid = append(invalid, key)
		}
	}
	if len(invalid) > 0 {
		return badBody("%s is invalid attribute for filtering", pythonList(invalid))
	}
	all := items
	for key, vals := range q {
		if listParams[key] {
			continue
		}
		var want []string
		for _, v := range vals {
			if v != "" { // without empty-string-filtering, Neutron drops empty values
				want = append(want, v)
			}
		}
		if len(want) == 0 {
			continue
		}
		if match := tagFilters[key]; l.tagged && match != nil {
			items = filterTags(items, want, match)
			continue
		}
		out := items[:0:0]
		for _, it := range items {
			if matchesAny(it[key], want) {
				out = append(out, it)
			}
		}
		items = out
	}
	order, err := listOrder(q, l)
	if err != nil {
		return err
	}
	limit, err := listLimit(q)
	if err != nil {
		return err
	}
	if limit > 0 {
		// Native pagination orders by the primary key last, so that pages are stable.
		order = append(order, sortKey{l.key, false})
	}
	if len(order) > 0 {
		sort.SliceStable(items, func(i, j int) bool { return order.less(items[i], items[j]) })
	}
	var links []any
	if limit > 0 {
		reverse := strings.EqualFold(q.Get("page_reverse"), "true")
		var marker map[string]any
		if m := q.Get("marker"); m != "" {
			for _, it := range all {
				if fmt.Sprint(it[l.key]) == m {
					marker = it
					break
				}
			}
			if marker == nil && l.markerNotFound != nil {
				return l.markerNotFound(m)
			}
		}
		items = page(items, order, marker, limit, reverse)
		links = pageLinks(c, items, l.key, limit, reverse)
	}
	hidden := l.hidden
	if attrs := unreadable(c, strings.TrimSuffix(collection, "s")); len(attrs) > 0 {
		hidden = maps.Clone(hidden) // newListing's map: never nil
		for _, a := range attrs {
			hidden[a] = true
		}
	}
	resp := map[string]any{collection: selectFields(items, q["fields"], hidden)}
	if len(links) > 0 {
		resp[collection+"_links"] = links
	}
	return c.JSON(http.StatusOK, resp)
}

// selectFields returns items without the hidden attributes and, when fields are named,
// with those only.
func selectFields(items []map[string]any, fields []string, hidden map[string]bool) []map[string]any {
	if len(fields) == 0 && len(hidden) == 0 {
		return items
	}
	out := make([]map[string]any, len(items))
	for i, it := range items {
		sel := make(map[string]any, len(it))
		if len(fields) == 0 {
			for k, v := range it {
				sel[k] = v
			}
		}
		for _, f := range fields {
			if v, ok := it[f]; ok {
				sel[f] = v
			}
		}
		for h := range hidden {
			delete(sel, h)
		}
		out[i] = sel
	}
	return out
}

// sortKey is one attribute of a list's order.
type sortKey struct {
	attr string
	desc bool
}

type listOrdering []sortKey

func (o listOrdering) less(a, b map[string]any) bool {
	for _, k := range o {
		c := compare(a[k.attr], b[k.attr])
		if c == 0 {
			continue
		}
		if k.desc {
			return c > 0
		}
		return c < 0
	}
	return false
}

// listOrder reads sort_key and sort_dir (a key without its direction is ascending).
func listOrder(q url.Values, l listing) (listOrdering, error) {
	keys, dirs := nonEmpty(q["sort_key"]), nonEmpty(q["sort_dir"])
	if len(dirs) > len(keys) {
		return nil, badBody("The number of sort_keys and sort_dirs must be same")
	}
	var absent, bad []string
	for _, k := range keys {
		if !l.attrs[k] {
			absent = append(absent, k)
		}
	}
	if len(absent) > 0 {
		return nil, badBody("%s is invalid attribute for sort_keys", pythonList(absent))
	}
	for _, d := range dirs {
		if d != "asc" && d != "desc" {
			bad = append(bad, d)
		}
	}
	if len(bad) > 0 {
		return nil, badBody("%s is invalid value for sort_dirs, valid value is 'asc' and 'desc'", pythonList(bad))
	}
	var o listOrdering
	seen := map[string]bool{}
	for i, k := range keys {
		if !seen[k] {
			seen[k] = true
			o = append(o, sortKey{k, i < len(dirs) && dirs[i] == "desc"})
		}
	}
	return o, nil
}

func nonEmpty(vs []string) []string {
	var out []string
	for _, v := range vs {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// listLimit reads limit: 0 (or none) lists everything, as Neutron without
// pagination_max_limit; a negative or non-integer limit is Neutron's BadRequest.
func listLimit(q url.Values) (int, error) {
	if !q.Has("limit") {
		return 0, nil
	}
	l := q.Get("limit")
	n, err := strconv.Atoi(strings.TrimSpace(l))
	if err != nil || n < 0 {
		return 0, &db.Error{Class: db.ClassInvalid, Type: "BadRequest",
			Message: fmt.Sprintf("Bad limit request: Limit must be an integer 0 or greater and not '%s'.", l)}
	}
	return n, nil
}

// page returns the page of the sorted items: the limit items after marker (from the
// start without one), or with reverse the limit items before it (the last ones without
// one), in the order of items either way. marker need not be among items (a filter may
// leave it out): its place in the order is what counts, as in an SQL keyset page.
func page(items []map[string]any, o listOrdering, marker map[string]any, limit int, reverse bool) []map[string]any {
	if reverse {
		end := len(items)
		if marker != nil {
			end = sort.Search(len(items), func(i int) bool { return !o.less(items[i], marker) })
		}
		return items[max(end-limit, 0):end]
	}
	start := 0
	if marker != nil {
		start = sort.Search(len(items), func(i int) bool { return o.less(marker, items[i]) })
	}
	return items[start:min(start+limit, len(items))]
}

// pageLinks returns Neutron's pagination links of a page: "next" unless the page is a
// short forward one, "previous" unless it is a short reversed one. next is the same
// query with the page's last item as marker and without page_reverse; previous the
// same query with its first item as marker and page_reverse=True (no marker for an
// empty page).
func pageLinks(c echo.Context, items []map[string]any, key string, limit int, reverse bool) []any {
	var links []any
	link := func(rel string, marker map[string]any, reverse bool) {
		q := url.Values{}
		for k, v := range c.QueryParams() {
			if k != "marker" && k != "page_reverse" {
				q[k] = v
			}
		}
		if marker != nil {
			q.Set("marker", fmt.Sprint(marker[key]))
		}
		if reverse {
			q.Set("page_reverse", "True")
		}
		links = append(links, map[string]any{"rel": rel,
			"href": baseURL(c) + c.Request().URL.Path + "?" + q.Encode()})
	}
	var first, last map[string]any
	if len(items) > 0 {
		first, last = items[0], items[len(items)-1]
	}
	if len(items) == limit || reverse {
		link("next", last, false)
	}
	if len(items) == limit || !reverse {
		link("previous", first, true)
	}
	return links
}

// matchesAny reports whether attribute value v matches one of the filter values. List
// attributes match when an element matches; for lists of objects (fixed_ips) a filter
// value "key=value" matches an element's key.
func matchesAny(v any, vals []string) bool {
	for _, want := range vals {
		if matches(v, want) {
			return true
		}
	}
	return false
}

func matches(v any, want string) bool {
	switch x := v.(type) {
	case nil:
		return want == "" || strings.EqualFold(want, "none") || strings.EqualFold(want, "null")
	case string:
		return x == want
	case bool:
		b, err := strconv.ParseBool(strings.ToLower(want))
		return err == nil && b == x
	case []string:
		for _, e := range x {
			if e == want {
				return true
			}
		}
		return false
	case []any:
		k, val, isKV := strings.Cut(want, "=")
		for _, e := range x {
			if m, ok := e.(map[string]any); ok && isKV {
				if fmt.Sprint(m[k]) == val {
					return true
				}
			} else if fmt.Sprint(e) == want {
				return true
			}
		}
		return false
	default:
		return fmt.Sprint(x) == want
	}
}

func compare(a, b any) int {
	switch x := a.(type) {
	case string:
		y, _ := b.(string)
		return strings.Compare(x, y)
	case bool:
		y, _ := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case int, int64:
		fx, _ := strconv.ParseFloat(fmt.Sprint(x), 64)
		fy, _ := strconv.ParseFloat(fmt.Sprint(b), 64)
		switch {
		case fx < fy:
			return -1
		case fx > fy:
			return 1
		}
		return 0
	case nil:
		if b == nil {
			return 0
		}
		return -1
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

// tagFilters are Neutron's tag filters (neutron/db/standard_attr tag hooks), each a test
// of an item's tags against the filter's tags: tags has all of them, tags-any one of
// them, not-tags not all of them, not-tags-any none of them.
var tagFilters = map[string]func(has func(string) bool, want []string) bool{
	"tags": func(has func(string) bool, want []string) bool { return all(has, want) },
	"tags-any": func(has func(string) bool, want []string) bool {
		return slices.ContainsFunc(want, has)
	},
	"not-tags": func(has func(string) bool, want []string) bool { return !all(has, want) },
	"not-tags-any": func(has func(string) bool, want []string) bool {
		return !slices.ContainsFunc(want, has)
	},
}

func all(has func(string) bool, want []string) bool {
	for _, t := range want {
		if !has(t) {
			return false
		}
	}
	return true
}

// filterTags returns the items whose tags pass match. The filter's tags are its values
// split at commas, repeated values adding to them (Neutron's _get_tag_list).
func filterTags(items []map[string]any, vals []string, match func(has func(string) bool, want []string) bool) []map[string]any {
	var want []string
	for _, v := range vals {
		for _, t := range strings.Split(v, ",") {
			if !slices.Contains(want, t) {
				want = append(want, t)
			}
		}
	}
	out := items[:0:0]
	for _, it := range items {
		tags, _ := it["tags"].([]string)
		if match(func(t string) bool { return slices.Contains(tags, t) }, want) {
			out = append(out, it)
		}
	}
	return out
}
