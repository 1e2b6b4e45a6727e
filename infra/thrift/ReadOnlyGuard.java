// A Spark session extension that lets a session read and nothing else: the analysts' Thrift
// JDBC server runs with it (infra/thrift.sh compiles it against the venv's Spark jars).
//
// It is a check rule, so it sees every statement after analysis and before anything runs,
// whatever the client (beeline, a BI tool over JDBC, a notebook):
//   - a plan holding any command is refused, except those that only read the catalog
//     (SHOW ..., DESCRIBE ..., EXPLAIN, USE, SET without a value);
//   - reflect(), java_method() and try_reflect() are refused anywhere in the plan, subqueries
//     included: they call static Java methods in the server (System.getenv, System.exit).
// The server also runs with `spark.sql.runSQLOnFiles=false` (no `parquet.`/path`` reads), a
// metastore role that may only SELECT, and an environment without the pipeline's secrets:
// this rule is one of several walls, not the only one.
package percolate;

import java.util.Set;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.expressions.CallMethodViaReflection;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.command.SetCommand;

import scala.Function1;
import scala.runtime.AbstractFunction1;
import scala.runtime.BoxedUnit;

public final class ReadOnlyGuard extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {

  /** Commands that only read the catalog or the session (by class name, v1 and v2 forms). */
  static final Set<String> READ_COMMANDS = Set.of(
      "ShowTables", "ShowTablesCommand", "ShowTablesExtended", "ShowTableExtended",
      "ShowNamespaces", "ShowViews", "ShowViewsCommand", "ShowColumns", "ShowColumnsCommand",
      "ShowPartitions", "ShowPartitionsCommand", "ShowCreateTable", "ShowCreateTableCommand",
      "ShowCreateTableAsSerdeCommand", "ShowFunctions", "ShowFunctionsCommand",
      "ShowTableProperties", "ShowTablePropertiesCommand", "ShowCatalogs", "ShowCatalogsCommand",
      "ShowCurrentNamespace", "ShowCurrentNamespaceCommand",
      "DescribeRelation", "DescribeTableCommand", "DescribeColumn", "DescribeColumnCommand",
      "DescribeNamespace", "DescribeDatabaseCommand", "DescribeFunction", "DescribeFunctionCommand",
      "DescribeQueryCommand", "ExplainCommand", "SetCatalogAndNamespace", "SetCatalogCommand",
      "SetNamespaceCommand", "SetCommand");

  public static final String MESSAGE = "[percolate read-only] ";

  @Override
  public BoxedUnit apply(SparkSessionExtensions extensions) {
    extensions.injectCheckRule(new AbstractFunction1<SparkSession, Function1<LogicalPlan, BoxedUnit>>() {
      @Override
      public Function1<LogicalPlan, BoxedUnit> apply(SparkSession session) {
        return new AbstractFunction1<LogicalPlan, BoxedUnit>() {
          @Override
          public BoxedUnit apply(LogicalPlan plan) {
            check(plan);
            return BoxedUnit.UNIT;
          }
        };
      }
    });
    return BoxedUnit.UNIT;
  }

  static void check(LogicalPlan plan) {
    plan.foreachWithSubqueries(new AbstractFunction1<LogicalPlan, BoxedUnit>() {
      @Override
      public BoxedUnit apply(LogicalPlan node) {
        checkNode(node);
        return BoxedUnit.UNIT;
      }
    });
  }

  static void checkNode(LogicalPlan node) {
    String name = node.getClass().getSimpleName();
    if (node instanceof Command && !READ_COMMANDS.contains(name)) {
      throw new SecurityException(MESSAGE + "this server only reads: " + name + " is refused");
    }
    if (node instanceof SetCommand) {
      scala.Option<scala.Tuple2<String, scala.Option<String>>> kv = ((SetCommand) node).kv();
      if (kv.isDefined() && kv.get()._2().isDefined()) {
        throw new SecurityException(MESSAGE + "settings cannot be changed here (SET " + kv.get()._1() + "=...)");
      }
    }
    scala.collection.Iterator<Expression> expressions = node.expressions().iterator();
    while (expressions.hasNext()) {
      expressions.next().foreach(new AbstractFunction1<Expression, BoxedUnit>() {
        @Override
        public BoxedUnit apply(Expression e) {
          if (e instanceof CallMethodViaReflection) {
            throw new SecurityException(MESSAGE + e.prettyName()
                + "() is refused: it calls Java methods inside the server");
          }
          return BoxedUnit.UNIT;
        }
      });
    }
  }
}
