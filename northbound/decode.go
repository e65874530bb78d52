package northbound

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// maxStrLen is the longest string attribute Neutron's attribute map takes (255).
const maxStrLen = 255

// body is one resource of a request, {"<kind>": {...}}, with its attributes checked
// against what the operation accepts.
type body struct {
	fields map[string]json.RawMessage
}

// readBody decodes {"<kind>": {...}} and rejects attributes not in allowed: read-only
// ones ("not allowed in POST/PUT") and unknown ones ("Unrecognized attribute(s)").
func readBody(c echo.Context, kind string, allowed []string, readOnly []string) (*body, error) {
	raw, err := readRaw(c, maxBody)
	if err != nil {
		return nil, err
	}
	if len(raw) > maxBody {
		return nil, tooLarge("Request is too large: the body is limited to %d bytes.", maxBody)
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, badBody("Malformed request body: %v", err)
	}
	return parseOne(c, env, kind, allowed, readOnly)
}

// readRaw reads a request body of at most limit bytes (one more tells it is longer).
func readRaw(c echo.Context, limit int) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(c.Request().Body, int64(limit)+1))
	if err != nil {
		return nil, badBody("Unable to read request body: %v", err)
	}
	return raw, nil
}

// parseOne checks the envelope {"<kind>": {...}} and the resource's attributes.
func parseOne(c echo.Context, env map[string]json.RawMessage, kind string, allowed []string, readOnly []string) (*body, error) {
	inner, ok := env[kind]
	if !ok || len(env) != 1 {
		return nil, badBody("Resource body required: expected exactly one top-level key '%s'", kind)
	}
	return parseFields(c, inner, kind, allowed, readOnly)
}

// parseFields decodes one resource object and checks its attributes.
func parseFields(c echo.Context, inner json.RawMessage, kind string, allowed []string, readOnly []string) (*body, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(inner))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, badBody("Malformed request body: '%s' must be an object", kind)
	}
	op := "POST"
	if c.Request().Method == "PUT" {
		op = "PUT"
	}
	ok1 := map[string]bool{}
	for _, a := range allowed {
		ok1[a] = true
	}
	ro := map[string]bool{}
	for _, a := range readOnly {
		ro[a] = true
	}
	var unknown, readOnlySet []string
	for k := range fields {
		switch {
		case ok1[k]:
		case ro[k]:
			readOnlySet = append(readOnlySet, k)
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, badBody("Unrecognized attribute(s) '%s'", strings.Join(unknown, ", "))
	}
	b := &body{fields: fields}
	// Neutron's policy refuses an admin-only attribute before its plugin refuses an
	// attribute it cannot change (a member's provider:network_type on update is 403).
	if err := checkAdminAttrs(c, kind, b); err != nil {
		return nil, err
	}
	if len(readOnlySet) > 0 {
		sort.Strings(readOnlySet)
		return nil, badBody("Attribute '%s' not allowed in %s", readOnlySet[0], op)
	}
	return b, nil
}

func isNull(r json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(r), []byte("null")) }

func invalidField(name string, r json.RawMessage, reason string) error {
	return badBody("Invalid input for %s. Reason: '%s' %s.", name, string(r), reason)
}

// str returns a string attribute (nil when absent). null is rejected.
func (b *body) str(name string) (*string, error) {
	r, ok := b.fields[name]
	if !ok {
		return nil, nil
	}
	var s string
	if isNull(r) || json.Unmarshal(r, &s) != nil {
		return nil, invalidField(name, r, "is not a valid string")
	}
	// Neutron's attribute map limits every string it takes, name and description included,
	// to 255 characters (NAME_MAX_LEN, DESCRIPTION_MAX_LEN, ...), counted as Python counts.
	if utf8.RuneCountInString(s) > maxStrLen {
		return nil, badBody("Invalid input for %s. Reason: '%s' exceeds maximum length of %d.", name, s, maxStrLen)
	}
	return &s, nil
}

// nullableStr is str where null means "" (e.g. gateway_ip: null for no gateway).
func (b *body) nullableStr(name string) (*string, error) {
	r, ok := b.fields[name]
	if ok && isNull(r) {
		empty := ""
		return &empty, nil
	}
	return b.str(name)
}

// boolean accepts true/false and their string forms, as Neutron's convert_to_boolean.
func (b *body) boolean(name string) (*bool, error) {
	r, ok := b.fields[name]
	if !ok {
		return nil, nil
	}
	var v bool
	if json.Unmarshal(r, &v) == nil {
		return &v, nil
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		switch strings.ToLower(s) {
		case "true", "1":
			v = true
			return &v, nil
		case "false", "0":
			return &v, nil
		}
	}
	return nil, invalidField(name, r, "is not a valid boolean value")
}

// integer returns an integer attribute; null means absent when nullOK.
func (b *body) integer(name string, nullOK bool) (*int64, error) {
	r, ok := b.fields[name]
	if !ok || (nullOK && isNull(r)) {
		return nil, nil
	}
	v, err := intOf(r)
	if err != nil {
		return nil, invalidField(name, r, "is not an integer")
	}
	return &v, nil
}

// intOf decodes an integer, also given as a decimal string (Neutron's convert_to_int).
func intOf(r json.RawMessage) (int64, error) {
	var v int64
	if json.Unmarshal(r, &v) == nil {
		return v, nil
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		if _, err := fmt.Sscanf(s, "%d", &v); err == nil && fmt.Sprint(v) == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%s is not an integer", r)
}

// decode decodes an attribute strictly (unknown keys rejected) into dst; it reports
// whether the attribute was present.
func (b *body) decode(name string, dst any) (bool, error) {
	r, ok := b.fields[name]
	if !ok {
		return false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(r))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return true, badBody("Invalid input for %s. Reason: %v.", name, err)
	}
	return true, nil
}

// project resolves tenant_id/project_id for a create: an admin may name any project, a
// project caller only its own; another is 400, as Neutron's populate_project_id answers it
// (an HTTPBadRequest, not a policy refusal).
func (b *body) project(cl caller) (string, error) {
	t, err := b.str("tenant_id")
	if err != nil {
		return "", err
	}
	p, err := b.str("project_id")
	if err != nil {
		return "", err
	}
	if t != nil && p != nil && *t != *p {
		return "", badBody("'project_id' and 'tenant_id' do not match")
	}
	want := cl.project
	if p != nil {
		want = *p
	} else if t != nil {
		want = *t
	}
	if !cl.admin && want != cl.project {
		return "", badBody("Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges")
	}
	return want, nil
}

// isUUID reports whether s is a UUID as Neutron's validate_uuid (oslo's is_uuid_like)
// takes it: 32 hex digits in any case, hyphens, braces and a urn:uuid: prefix ignored.
func isUUID(s string) bool {
	t := strings.NewReplacer("urn:", "", "uuid:", "", "-", "").Replace(strings.ToLower(s))
	t = strings.Trim(t, "{}")
	if len(t) != 32 {
		return false
	}
	for _, r := range t {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// notUUID is the 400 of Neutron's API layer for an attribute whose validator is
// type:uuid (or uuid_or_none, uuid_list) given something else.
// duplicates returns the items that occur more than once in xs, in the order of their
// second occurrence, as neutron-lib's list validators name them.
func duplicates(xs []string) []string {
	seen := map[string]bool{}
	var dups []string
	for _, x := range xs {
		if seen[x] && !slices.Contains(dups, x) {
			dups = append(dups, x)
		}
		seen[x] = true
	}
	return dups
}

func notUUID(name, v string) error {
	return badBody("Invalid input for %s. Reason: '%s' is not a valid UUID.", name, v)
}

// id returns a UUID attribute (nil when absent), as str does, refusing a non-UUID.
func (b *body) id(name string) (*string, error) {
	s, err := b.str(name)
	if err != nil || s == nil {
		return s, err
	}
	if !isUUID(*s) {
		return nil, notUUID(name, *s)
	}
	return s, nil
}

// nullableID is id where null means "" (type:uuid_or_none).
func (b *body) nullableID(name string) (*string, error) {
	s, err := b.nullableStr(name)
	if err != nil || s == nil || *s == "" {
		return s, err
	}
	if !isUUID(*s) {
		return nil, notUUID(name, *s)
	}
	return s, nil
}
