-- Query workload for `cargo xtask bench-dynamic`: bulk insert, an index, joins, grouping,
-- sorting and a window function over generated rows.
create table item(id integer primary key, cat int, price int, name text);
with recursive n(i) as (select 1 union all select i + 1 from n where i < 200000)
insert into item select i, i % 97, (i * 7919) % 10007, 'item-' || (i * 31 % 100000) from n;
create table cat(id integer primary key, label text);
with recursive n(i) as (select 0 union all select i + 1 from n where i < 96)
insert into cat select i, 'cat-' || i from n;
create index item_price on item(price);
select count(*), sum(price), min(name), max(name) from item;
select c.label, count(*), avg(i.price) from item i join cat c on c.id = i.cat
  group by c.label order by 3 desc limit 5;
select name, price from item where price between 5000 and 5010 order by price, id limit 5;
select cat, sum(price) over (partition by cat order by id rows 2 preceding) as s
  from item where id % 5000 = 0 order by id limit 5;
select count(distinct name) from item;
