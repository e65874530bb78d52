package topology

import "time"

// Record is a resource the change log carries: *Network, *Subnet, *Port, *Router,
// *FloatingIP, *Host, *LocalVLAN, *SecurityGroup, *SecurityGroupRule or *SubnetPool.
type Record interface {
	// Kind is the kind of resource the record is.
	Kind() Kind
}

// Kind implements Record.
func (*Network) Kind() Kind { return KindNetwork }

// Kind implements Record.
func (*Subnet) Kind() Kind { return KindSubnet }

// Kind implements Record.
func (*Port) Kind() Kind { return KindPort }

// Kind implements Record.
func (*Router) Kind() Kind { return KindRouter }

// Kind implements Record.
func (*FloatingIP) Kind() Kind { return KindFloatingIP }

// Kind implements Record.
func (*Host) Kind() Kind { return KindHost }

// Kind implements Record.
func (*LocalVLAN) Kind() Kind { return KindLocalVLAN }

// Kind implements Record.
func (*SecurityGroup) Kind() Kind { return KindSecurityGroup }

// Kind implements Record.
func (*SecurityGroupRule) Kind() Kind { return KindSecurityGroupRule }

// Kind implements Record.
func (*SubnetPool) Kind() Kind { return KindSubnetPool }

// Change is one entry of the change log: the full new state of a resource (or its last
// state, for a delete) at a revision. One revision may hold several changes.
type Change struct {
	Revision int64
	Seq      int
	Kind     Kind
	ID       string
	Op       Op
	Object   Record
	At       time.Time
}
