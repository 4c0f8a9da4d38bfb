// Values built from the release's context: hubtasks renders this file for every basehub
// release (a chart's values.jsonnet is its default `chart_values`), after values.yaml and
// before the hub's own values files, with the hub's context as external variables
// (HUBTASKS_ is the default `jsonnet_ext_var_prefix`). See README, "jsonnet values".
local domain = std.extVar('HUBTASKS_HUB_DOMAIN');

{
  jupyterhub: {
    ingress: {
      hosts: [domain],
    },
  },
}
