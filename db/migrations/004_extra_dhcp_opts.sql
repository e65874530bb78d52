-- Extra DHCP options of ports (Neutron's extra_dhcp_opt extension) live in the port's obj
-- as extra_dhcp_opts, a list of {opt_name, opt_value, ip_version}: existing ports have none.

UPDATE ports SET obj = obj || '{"extra_dhcp_opts": []}' WHERE NOT obj ? 'extra_dhcp_opts';
