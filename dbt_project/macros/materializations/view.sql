{#-
  A view is rebuilt only when what defines it changed: its compiled SQL, or the columns of the
  relations it reads (a view stores the types it was bound with, so a changed upstream column must
  rebuild it). The fingerprint of both is kept as the view's comment. A night re-creates no
  unchanged view: on the lake each re-creation was two catalog commits and a drop, for nothing.
  A changed view is dropped and created in one transaction. `--full-refresh` rebuilds every view.
-#}
{% materialization view, adapter='duckdb' %}
  {%- set target_relation = this.incorporate(type='view') -%}
  {%- set existing_relation = load_cached_relation(this) -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% call statement('view_fingerprint', fetch_result=True) -%}
    select
      (select comment from duckdb_views()
        where database_name = '{{ this.database }}' and schema_name = '{{ this.schema }}'
          and view_name = '{{ this.identifier }}') as built,
      {{ view_fingerprint(sql) }} as wanted
  {%- endcall %}
  {%- set built, wanted = load_result('view_fingerprint').table.rows[0] -%}
  {%- set unchanged = existing_relation is not none and existing_relation.is_view
                      and not should_full_refresh() and built == wanted -%}

  {%- if unchanged -%}
    {{ log("view " ~ target_relation ~ " unchanged (same SQL, same upstream columns): kept") }}
    {% call statement('main') -%} select 1 {%- endcall %}
  {%- else -%}
    {%- if existing_relation is not none -%}
      {{ adapter.drop_relation(existing_relation) }}
    {%- endif -%}
    {% call statement('main') -%}
      {{ get_create_view_as_sql(target_relation, sql) }}
      comment on view {{ target_relation }} is '{{ wanted }}';
    {%- endcall %}
  {%- endif -%}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#- SQL for the md5 of this model's compiled SQL and of the columns (name and type, in order) of
    every relation it reads, as the warehouse's catalog has them now. -#}
{% macro view_fingerprint(compiled_sql) -%}
  {%- set upstream = [] -%}
  {%- for unique_id in model.depends_on.nodes -%}
    {%- set node = graph.nodes.get(unique_id) or graph.sources.get(unique_id) -%}
    {%- if node is not none -%}
      {%- do upstream.append(node.schema ~ '.' ~ (node.alias or node.identifier or node.name)) -%}
    {%- endif -%}
  {%- endfor -%}
  'factory-view:' || md5('{{ local_md5(compiled_sql) }}' || coalesce((
    select string_agg(schema_name || '.' || table_name || '.' || column_name || ' ' || data_type, ','
                      order by schema_name, table_name, column_index)
    from duckdb_columns()
    where database_name = '{{ this.database }}'
      and schema_name || '.' || table_name in (
        {%- for name in upstream %}'{{ name }}'{{ ", " if not loop.last }}{% endfor %}{{ "''" if not upstream }})
  ), ''))
{%- endmacro %}
