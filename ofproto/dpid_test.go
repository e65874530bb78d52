package ofproto

import "testing"

func TestParseDPID(t *testing.T) {
	for in, want := range map[string]DPID{
		"0000000000000abc": 0xabc, "abc": 0xabc, "0xabc": 0xabc, "0XABC": 0xabc,
		"00:00:00:00:00:00:0a:bc": 0xabc, "ffffffffffffffff": 1<<64 - 1,
	} {
		got, err := ParseDPID(in)
		if err != nil || got != want {
			t.Errorf("ParseDPID(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0x", "xyz", "12345678901234567", "+abc", "-1", "ab_c", " abc"} {
		if got, err := ParseDPID(in); err == nil {
			t.Errorf("ParseDPID(%q) = %v, want an error", in, got)
		}
	}
	if s := DPID(0xabc).String(); s != "0000000000000abc" {
		t.Errorf("String = %s", s)
	}
}
