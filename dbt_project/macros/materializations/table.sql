{#-
  A table model whose table exists with the columns its SQL returns (names and types, in order) gets
  its rows replaced (delete and insert, one transaction), not the table: the default materialization
  creates a new table, renames two and drops one, and on the lake each of those is a schema change
  that makes every later transaction of every process reload the whole catalog. Anything else (a
  first build, changed columns, `--full-refresh`, partitioning, sorting, indexes, Python models)
  takes dbt-duckdb's own table materialization. A table under an enforced contract keeps the md5 of
  the contract's columns and constraints as its comment: a changed contract rebuilds the table, so
  new constraints are created, and the contract's column check runs on every build.
-#}
{% materialization table, adapter='duckdb', supported_languages=['sql', 'python'] %}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set plain = model.language == 'sql' and existing_relation is not none and existing_relation.is_table
                  and not should_full_refresh() and not config.get('partitioned_by') and not config.get('sorted_by')
                  and not config.get('indexes') -%}
  {%- set contract = contract_fingerprint() -%}
  {%- set same_columns = plain and table_comment(existing_relation) == contract
                         and table_columns_unchanged(existing_relation, sql) -%}
  {%- if not same_columns -%}
    {%- set result = dbt.materialization_table_duckdb() -%}
    {%- if contract -%}
      {% call statement('contract_fingerprint', auto_begin=True) -%}
        comment on table {{ target_relation }} is '{{ contract }}'
      {%- endcall %}
      {{ adapter.commit() }}
    {%- endif -%}
    {{ return(result) }}
  {%- endif -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}
  {%- if contract -%}
    {{ get_assert_columns_equivalent(sql) }}
  {%- endif -%}
  {% call statement('main') -%}
    delete from {{ target_relation }};
    insert into {{ target_relation }} select * from (
      {{ sql }}
    );
  {%- endcall %}
  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#- Whether ``relation`` has the columns ``compiled_sql`` returns: names and types, in order. -#}
{% macro table_columns_unchanged(relation, compiled_sql) -%}
  {%- set have = adapter.get_columns_in_relation(relation) -%}
  {%- set wanted = get_column_schema_from_query(compiled_sql) -%}
  {%- set ns = namespace(same=(have | length) == (wanted | length) and (have | length) > 0) -%}
  {%- for column in wanted if ns.same -%}
    {%- set other = have[loop.index0] -%}
    {%- if column.name != other.name or column.dtype | upper != other.dtype | upper -%}
      {%- set ns.same = false -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(ns.same) }}
{%- endmacro %}


{#- The md5 of this model's enforced contract (columns, types, constraints), or '' without one. -#}
{% macro contract_fingerprint() -%}
  {%- if not config.get('contract').enforced -%}{{ return('') }}{%- endif -%}
  {%- set parts = [] -%}
  {%- for column in model.columns.values() -%}
    {%- do parts.append(column.name ~ ' ' ~ column.data_type) -%}
    {%- for constraint in column.constraints -%}{%- do parts.append(constraint.type ~ ' ' ~ (constraint.expression or '')) -%}{%- endfor -%}
  {%- endfor -%}
  {%- for constraint in model.constraints -%}
    {%- do parts.append(constraint.type ~ ' ' ~ (constraint.columns or []) | join(',') ~ ' ' ~ (constraint.expression or '')) -%}
  {%- endfor -%}
  {{ return('factory-contract:' ~ local_md5(parts | join(';'))) }}
{%- endmacro %}


{#- The comment the warehouse holds for ``relation`` ('' when none). -#}
{% macro table_comment(relation) -%}
  {%- set found = run_query("select coalesce(comment, '') from duckdb_tables() where database_name = '"
                            ~ relation.database ~ "' and schema_name = '" ~ relation.schema
                            ~ "' and table_name = '" ~ relation.identifier ~ "'") -%}
  {{ return(found.rows[0][0] if found.rows | length == 1 else '') }}
{%- endmacro %}
