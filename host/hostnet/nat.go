package hostnet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/dvrflow/dvrflow/plan"
)

// natTable is the one nftables table Apply owns in each namespace.
const natTable = "dvrflow"

// natComment is the rule's identity, stored as the rule's comment (nftables user
// data), so comparing installed rules with the plan needs no expression decoding and
// `nft list ruleset` shows which plan rule each is.
func natComment(r plan.NATRule) string {
	var b strings.Builder
	b.WriteString(r.Kind)
	m := r.Match
	for _, f := range []struct{ k, v string }{{"daddr", m.Daddr}, {"saddr", m.Saddr}, {"iif", m.IIF}, {"oif", m.OIF}} {
		if f.v != "" {
			fmt.Fprintf(&b, " %s=%s", f.k, f.v)
		}
	}
	fmt.Fprintf(&b, " to=%s", r.To)
	return b.String()
}

// userData encodes a comment as nftables rule user data (NFTNL_UDATA_RULE_COMMENT).
func userData(comment string) []byte {
	c := append([]byte(comment), 0)
	return append([]byte{0, byte(len(c))}, c...)
}

func commentOf(ud []byte) string {
	if len(ud) < 2 || ud[0] != 0 || int(ud[1])+2 > len(ud) {
		return ""
	}
	return strings.TrimRight(string(ud[2:2+int(ud[1])]), "\x00")
}

func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// matchAddr loads the IPv4 source (offset 12) or destination (16) address and
// compares it with p.
func matchAddr(offset uint32, p netip.Prefix) []expr.Any {
	e := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}}
	if p.Bits() < 32 {
		m := make([]byte, 4)
		for i := 0; i < p.Bits(); i++ {
			m[i/8] |= 0x80 >> (i % 8)
		}
		e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: []byte{0, 0, 0, 0}})
	}
	a := p.Addr().As4()
	return append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]})
}

func matchIf(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: ifname(name)}}
}

func natExprs(r plan.NATRule) []expr.Any {
	var e []expr.Any
	m := r.Match
	if m.IIF != "" {
		e = append(e, matchIf(expr.MetaKeyIIFNAME, expr.CmpOpEq, m.IIF)...)
	}
	if m.OIF != "" {
		e = append(e, matchIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, m.OIF)...)
	}
	if m.Saddr != "" {
		p, _ := plan.ParseAddrOrPrefix(m.Saddr)
		e = append(e, matchAddr(12, p)...)
	}
	if m.Daddr != "" {
		p, _ := plan.ParseAddrOrPrefix(m.Daddr)
		e = append(e, matchAddr(16, p)...)
	}
	to := netip.MustParseAddr(r.To).As4()
	typ := expr.NATTypeSourceNAT
	if r.Kind == plan.NATDNAT {
		typ = expr.NATTypeDestNAT
	}
	return append(e,
		&expr.Immediate{Register: 1, Data: to[:]},
		&expr.NAT{Type: typ, Family: unix.NFPROTO_IPV4, RegAddrMin: 1}) // no proto range: conntrack keeps ports and ICMP ids unique
}

// nat replaces the namespace's "dvrflow" table in one atomic batch when its rules
// differ from the plan's, and deletes it when the plan has no NAT rules.
func (r *applyRun) nat(ns *plan.Namespace) error {
	name := r.full(ns.Name)
	conn, err := nftables.New(nftables.WithNetNSFd(int(r.nsh[name])))
	if err != nil {
		return fmt.Errorf("hostnet: %s: nftables: %w", name, err)
	}
	var wantPre, wantPost []string
	for _, nr := range ns.NAT {
		if nr.Kind == plan.NATDNAT {
			wantPre = append(wantPre, natComment(nr))
		} else {
			wantPost = append(wantPost, natComment(nr))
		}
	}
	cur, err := conn.ListTableOfFamily(natTable, nftables.TableFamilyIPv4)
	if err != nil && !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "no such file") {
		return fmt.Errorf("hostnet: %s: list nft table: %w", name, err)
	}
	if err != nil {
		cur = nil
	}
	if cur != nil && len(ns.NAT) > 0 {
		pre, err1 := chainComments(conn, cur, "prerouting")
		post, err2 := chainComments(conn, cur, "postrouting")
		if err1 == nil && err2 == nil && slices.Equal(pre, wantPre) && slices.Equal(post, wantPost) {
			return nil
		}
	}
	if cur == nil && len(ns.NAT) == 0 {
		return nil
	}
	if cur != nil {
		conn.DelTable(cur)
	}
	if len(ns.NAT) > 0 {
		t := conn.AddTable(&nftables.Table{Name: natTable, Family: nftables.TableFamilyIPv4})
		pre := conn.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
		post := conn.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
		for _, nr := range ns.NAT {
			ch := post
			if nr.Kind == plan.NATDNAT {
				ch = pre
			}
			conn.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: natExprs(nr), UserData: userData(natComment(nr))})
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("hostnet: %s: nft batch: %w", name, err)
	}
	if len(ns.NAT) == 0 {
		r.changed("%s: delete nft table %s", name, natTable)
	} else {
		r.changed("%s: set nft table %s (%d rules)", name, natTable, len(ns.NAT))
	}
	return nil
}

func chainComments(conn *nftables.Conn, t *nftables.Table, chain string) ([]string, error) {
	rules, err := conn.GetRules(t, &nftables.Chain{Name: chain, Table: t})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ru := range rules {
		out = append(out, commentOf(ru.UserData))
	}
	return out, nil
}
